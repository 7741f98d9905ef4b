#!/usr/bin/env python3
"""The OpenAI Python SDK against a running `ipt serve` (chat, streaming, completions, logprobs,
stream_options, stop, refused fields). Run by ctest as `openai_sdk`; exits 77 (ctest: skipped)
when no Python with the `openai` package is found: `pip install openai`, or point IPT_TEST_PYTHON
at an interpreter that has it.

  python3 tests/infer/openai_sdk_test.py build/ipt models/default
"""
import os
import subprocess
import sys
import threading

SKIP = 77

try:
    import openai
except ImportError:
    other = os.environ.get("IPT_TEST_PYTHON")
    if other and not os.environ.get("IPT_TEST_PYTHON_TRIED"):  # a venv's python: same binary, own packages
        os.environ["IPT_TEST_PYTHON_TRIED"] = "1"
        os.execv(other, [other] + sys.argv)
    print("SKIPPED: the Python package 'openai' is not installed (pip install openai, or set IPT_TEST_PYTHON)")
    sys.exit(SKIP)


def start_server(ipt, model):
    proc = subprocess.Popen([ipt, "-t", "1", "serve", "-m", model, "--port", "0", "--dtype", "float32",
                             "--device", "cpu", "--name", "tiny"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:  # "listening on http://127.0.0.1:PORT  (model ...)" after stderr notes
        seen.append(line)
        if line.startswith("listening on http://127.0.0.1:"):
            port = int(line.split(":")[2].split()[0])
            # Keep draining the server's output so it never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, port
    proc.kill()
    raise SystemExit("ipt serve did not start:\n" + "".join(seen))


def check_chat(client):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    r = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8, temperature=0)
    text = r.choices[0].message.content
    assert isinstance(text, str) and r.choices[0].finish_reason in ("stop", "length"), r
    assert r.usage.completion_tokens <= 8 and r.usage.prompt_tokens > 0, r.usage

    chunks = list(client.chat.completions.create(model="tiny", messages=messages, max_tokens=8, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text, (streamed, text)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == r.usage.completion_tokens, chunks[-1]
    assert all(c.usage is None for c in chunks[:-1])


def check_chat_logprobs(client):
    messages = [{"role": "user", "content": "Hello"}]
    r = client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, temperature=0,
                                       logprobs=True, top_logprobs=2)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens, (len(content), r.usage)
    assert "".join(t.token for t in content) == r.choices[0].message.content
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 2 and bytes(t.bytes).decode("utf-8", "replace") == t.token
        assert t.top_logprobs[0].token == t.token and t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob

    streamed = []
    for c in client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, temperature=0,
                                            logprobs=True, top_logprobs=2, stream=True):
        if c.choices and c.choices[0].logprobs:
            streamed += c.choices[0].logprobs.content
    assert [(t.token, t.logprob) for t in streamed] == [(t.token, t.logprob) for t in content]


def check_completions(client):
    r = client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=8, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert "".join(lp.tokens) == r.choices[0].text
    assert len(lp.token_logprobs) == len(lp.tokens) == len(lp.top_logprobs) == len(lp.text_offset)
    assert all(len(d) <= 2 for d in lp.top_logprobs)

    stream = client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=8, temperature=0,
                                       stream=True)
    assert "".join(c.choices[0].text for c in stream) == r.choices[0].text

    text = r.choices[0].text
    assert len(text) >= 4, text
    stop = text[2:4]
    s = client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=8, temperature=0,
                                  stop=["\x00never", stop])
    assert s.choices[0].text == text[:text.find(stop)] and s.choices[0].finish_reason == "stop", s


def check_refusals(client):
    refused = [
        dict(tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]),
        dict(n=2),
        dict(response_format={"type": "json_object"}),
        dict(logprobs=True, top_logprobs=21),
    ]
    for extra in refused:
        try:
            client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=2, **extra)
        except openai.BadRequestError as e:
            field = next(iter(extra)) if "top_logprobs" not in extra else "top_logprobs"
            assert field in str(e), (field, str(e))
        else:
            raise AssertionError(f"{extra} was accepted")
    assert [m.id for m in client.models.list().data] == ["tiny"]


def main():
    ipt, model = sys.argv[1], sys.argv[2]
    proc, port = start_server(ipt, model)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=120)
        for check in (check_chat, check_chat_logprobs, check_completions, check_refusals):
            check(client)
            print(f"ok {check.__name__}")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    print(f"openai {openai.__version__}: all checks passed")


if __name__ == "__main__":
    main()
