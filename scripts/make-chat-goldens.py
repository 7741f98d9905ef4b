#!/usr/bin/env python3
"""Expected chat-template renderings from transformers, for tests/infer/test_chat_goldens.cpp.

Each template in tests/fixtures/chat_templates/*.jinja is rendered by transformers'
render_jinja_template (the function tokenizer.apply_chat_template(..., tokenize=False) calls, with
its ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, tojson and raise_exception) on
several conversations (goldens.json), and small templates through the same Jinja environment
(jinja_goldens.json); where the real tokenizer is in the repository (Qwen3) the script also checks
that apply_chat_template itself gives the same text. The cases, with the expected text or the
error transformers raised, go to tests/fixtures/chat_templates/goldens.json.

  .venv/bin/python scripts/make-chat-goldens.py      # needs transformers and jinja2 (not at runtime)
"""
import json
import pathlib

import transformers
from transformers.utils.chat_template_utils import _compile_jinja_template, render_jinja_template

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "chat_templates"

# The special tokens each model's tokenizer passes to its template (its special_tokens_map).
MODELS = {
    "smollm2-135m-instruct": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>"},
    "qwen2.5-7b-instruct": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "qwen3": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "llama-3.2-3b-instruct": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "mistral-nemo-instruct-2407": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "phi-3.5-mini-instruct": {"bos_token": "<s>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<unk>"},
    "functionary-medium-v3.1": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "deepseek-r1-distill-qwen-32b": {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>", "pad_token": "<｜end▁of▁sentence｜>"},
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. \"Paris\""},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7.5},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {"type": "function", "function": {"name": "search", "description": "Search the web — any language",
                                                 "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}

SYSTEM = {"role": "system", "content": "You are terse. Answer in one line."}
USER = {"role": "user", "content": "What is the capital of France?"}
ASSISTANT = {"role": "assistant", "content": "Paris."}
USER2 = {"role": "user", "content": "  And of Japan? Answer with \"quotes\" and 'apostrophes', ünïcödé 日本 🙂\n"}
TOOL_CALL = {"role": "assistant", "content": "",
             "tool_calls": [{"id": "call12345", "type": "function",
                             "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]}
TOOL_RESULT = {"role": "tool", "tool_call_id": "call12345", "name": "get_weather", "content": "{\"temp\": 21.5, \"sky\": \"clear\"}"}

# (name, messages, add_generation_prompt, tools, extra template variables)
COMMON = [
    ("system_user_prompt", [SYSTEM, USER], True, None, {}),
    ("user_only_prompt", [USER], True, None, {}),
    ("multi_turn_prompt", [SYSTEM, USER, ASSISTANT, USER2], True, None, {}),
    ("multi_turn_closed", [USER, ASSISTANT, USER2, ASSISTANT], False, None, {}),
    ("no_system_multi_turn", [USER, ASSISTANT, USER2], True, None, {}),
]
TOOLS = [
    ("tools_prompt", [SYSTEM, USER], True, [WEATHER_TOOL, SEARCH_TOOL], {}),
    ("tools_call_and_result", [USER, TOOL_CALL, TOOL_RESULT], True, [WEATHER_TOOL], {}),
]
EXTRA = {
    "qwen3": [
        ("thinking_off", [SYSTEM, USER], True, None, {"enable_thinking": False}),
        ("thinking_on", [SYSTEM, USER], True, None, {"enable_thinking": True}),
        ("thinking_off_tools", [USER], True, [WEATHER_TOOL], {"enable_thinking": False}),
        ("reasoning_in_history", [USER, {"role": "assistant", "content": "<think>\nFrance... Paris.\n</think>\n\nParis."}, USER2], True, None, {}),
        ("reasoning_content_field", [USER, {"role": "assistant", "content": "Paris.", "reasoning_content": "Easy."}], False, None, {}),
    ],
    "llama-3.2-3b-instruct": [
        ("date_string", [SYSTEM, USER], True, None, {"date_string": "05 Dec 2026"}),
        ("tools_in_system", [SYSTEM, USER], True, [WEATHER_TOOL], {"tools_in_user_message": False, "date_string": "05 Dec 2026"}),
    ],
    "mistral-nemo-instruct-2407": [
        ("roles_must_alternate", [USER, USER], True, None, {}),  # raise_exception
    ],
    "deepseek-r1-distill-qwen-32b": [
        ("think_in_history", [USER, {"role": "assistant", "content": "<think>hmm</think>Paris."}, USER2], True, None, {}),
    ],
}
WITH_TOOLS = {"qwen2.5-7b-instruct", "qwen3", "llama-3.2-3b-instruct", "mistral-nemo-instruct-2407", "functionary-medium-v3.1"}
# The Llama 3.2 template writes today's date unless given one: fix it for reproducible goldens.
FIXED = {"llama-3.2-3b-instruct": {"date_string": "26 Jul 2024"}}


# Small templates run through transformers' Jinja environment itself: expressions, filters, tests,
# whitespace control and scoping with Python's semantics (test_jinja_goldens in test_chat_goldens.cpp).
EXPRESSION_VARS = {"m": {"role": "user", "content": "Hé <b>", "n": None, "l": [3, 1, 2], "f": 2.5}, "xs": ["b", "a", "c"], "s": "  Hello World  ", "n": 7, "e": [], "d": {"z": 1, "a": {"k": [1, {"q": None}]}}}
EXPRESSIONS = [
 "{{ 'a<'|safe + '<b' }}", "{{ '<x' + '>'|safe }}", "{{ '<' | e }}{{ '<' | e | e }}", "{{ none | selectattr('x') | list }}",
 "{{ none | map(attribute='x') | list }}", "{{ '' | reject('none') | list }}",
 "{{ undefined_name.attr }}", "{{ 1 + 'a' }}", "{{ [1].append(2) }}", "{% if %}", "{{ raise_exception('no') }}",
 "{{ m }}", "{{ m | tojson }}", "{{ d | tojson(indent=4) }}", "{{ d | tojson(indent=0) }}", "{{ m.l | sort(reverse=true) }}",
 "{{ xs | sort | join('-') }}", "{{ xs | join }}", "{{ s.strip().lower().split(' ') }}", "{{ s | trim | length }}",
 "{{ s | title }}", "{{ s.title() }}", "{{ 'hello-world foo_bar' | title }}", "{{ 'hello-world foo_bar'.title() }}", "{{ 'aBc'.capitalize() }}",
 "{{ n / 2 }}", "{{ n // 2 }}", "{{ n % 4 }}", "{{ n * 1.5 }}", "{{ 10 / 4 }}", "{{ 1e20 }}", "{{ 0.1 + 0.2 }}", "{{ 1/3 }}", "{{ -0.0 }}", "{{ 123456789.0 * 1000000000 }}",
 "{{ 2 ** -1 }}", "{{ 7 - 10 }}", "{{ n > 3 and n < 10 }}", "{{ xs[0] ~ xs[-1] }}", "{{ xs[5] }}", "{{ xs[1:] }}", "{{ xs[:-1] }}", "{{ xs[::-2] }}",
 "{{ s[2:7] }}", "{{ s[-5:] }}", "{{ m.content[1] }}", "{{ m['content'][:2] }}", "{{ m.n is none }}", "{{ m.missing is defined }}",
 "{{ m.items() | list }}", "{{ m | list }}", "{{ m.keys() | list | length }}", "{{ d.a.k[1].q }}", "{{ d['a']['k'] }}",
 "{% for k, v in d | items %}{{ k }}{% endfor %}", "{% for x in m.l | sort %}{{ loop.index }}{{ x }}{% endfor %}",
 "{{ e | first }}|{{ e | length }}|{{ e | join(',') }}", "{{ xs | map('upper') | list }}", "{{ [m, m] | map(attribute='role') | list }}",
 "{{ [m] | selectattr('n', 'none') | list | length }}", "{{ [1,2,3,4] | select('odd') | list }}", "{{ [1,2,3,4] | reject('even') | list }}",
 "{{ 'x' if e else 'y' }}", "{{ e or 'empty' }}", "{{ none ~ 1 }}", "{{ true + 1 }}", "{{ [1, [2, (3, 4)]] }}", "{{ (1,) }}", "{{ {'a': (1, 2)} | tojson }}",
 "{{ 'a\\tb\\\\c\"d\\'' }}", "{{ ['a\\tb\\\\c\"d\\''] }}", "{{ 'é' | tojson }}", "{{ '\\u0001' | tojson }}", "{{ '🙂' | tojson(ensure_ascii=true) }}",
 "{{ 1.0 | int }}{{ '3.7' | float }}{{ 'x' | int }}", "{{ [3, 1] | max }}{{ [3, 1] | min }}", "{{ 'abc' | reverse }}", "{{ 'a b' | replace(' ', '_') }}",
 "{{ 'Hello' is upper }}{{ 'HI' is upper }}", "{{ 3 is integer }}{{ 3.0 is float }}{{ true is boolean }}{{ 3 is number }}",
 "{{ m.content.startswith('H') }}{{ m.content.endswith('>') }}", "{{ 'a,b,,c'.split(',') }}", "{{ '  x  '.lstrip() }}|", "{{ 'xxhixx'.rstrip('x') }}",
 "{{ 'a' < 'b' < 'c' }}", "{{ 1 == 1 == 1 }}", "{{ 'ab' in xs }}", "{{ 'Hé' in m.content }}",
 "{% set ns = namespace(found=false) %}{% for x in xs %}{% if x == 'a' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}",
 "{% macro f(a, b=2) %}{{ a + b }}{% endmacro %}{{ f(1) }}{{ f(1, b=5) }}{{ f(b=1, a=3) }}",
 "{%- for x in xs -%}\n  {{ x }}\n{%- endfor -%}", "{% for x in xs %}\n{{ x }}\n{% endfor %}", "  {% for x in xs %}\n  {{ x }}\n  {% endfor %}\n",
 "{{ m.content | e }}", "{{ 'a\\nb\\n\\nc' | indent(2, true) }}", "{{ 'a\\nb\\n\\nc' | indent(2, blank=true) }}",
 "{{ xs | unique | list }}", "{{ [1, 2, 3] | sum(start=10) }}",
]


def expression_goldens():
    out = []
    for source in EXPRESSIONS:
        try:
            out.append({"template": source, "expected": _compile_jinja_template(source).render(**EXPRESSION_VARS)})
        except Exception as e:
            out.append({"template": source, "error": f"{type(e).__name__}: {e}"})
    return {"generator": "scripts/make-chat-goldens.py", "transformers": transformers.__version__,
            "variables": EXPRESSION_VARS, "cases": out}


def render(template, special, messages, add_generation_prompt, tools, extra):
    kwargs = {**special, **FIXED.get(template.stem, {}), **extra}
    try:
        text, _ = render_jinja_template(conversations=[messages], tools=tools, chat_template=template.read_text(),
                                        add_generation_prompt=add_generation_prompt, **kwargs)
        return {"expected": text[0]}, kwargs
    except Exception as e:  # TemplateError: the template refused the conversation (raise_exception)
        return {"error": str(e), "error_type": type(e).__name__}, kwargs


def main():
    cases = []
    for name, special in MODELS.items():
        template = FIXTURES / f"{name}.jinja"
        conversations = COMMON + (TOOLS if name in WITH_TOOLS else []) + EXTRA.get(name, [])
        for case, messages, gen, tools, extra in conversations:
            result, kwargs = render(template, special, messages, gen, tools, extra)
            variables = {k: v for k, v in kwargs.items() if k not in special}
            cases.append({"template": template.name, "case": case, "special_tokens": special, "messages": messages,
                          "add_generation_prompt": gen, "tools": tools, "variables": variables, **result})
    check_against_tokenizer(cases)
    out = FIXTURES / "goldens.json"
    out.write_text(json.dumps({"generator": "scripts/make-chat-goldens.py", "transformers": transformers.__version__,
                               "cases": cases}, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(cases)} cases -> {out.relative_to(ROOT)}")
    expressions = expression_goldens()
    out = FIXTURES / "jinja_goldens.json"
    out.write_text(json.dumps(expressions, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(expressions['cases'])} cases -> {out.relative_to(ROOT)}")


def check_against_tokenizer(cases):
    """apply_chat_template of the real Qwen3 tokenizer agrees with render_jinja_template."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(ROOT / "tests/fixtures/tokenizers/qwen3"))
    assert tokenizer.chat_template == (FIXTURES / "qwen3.jinja").read_text()
    for c in cases:
        if c["template"] != "qwen3.jinja" or "expected" not in c:
            continue
        text = tokenizer.apply_chat_template(c["messages"], tools=c["tools"], tokenize=False,
                                             add_generation_prompt=c["add_generation_prompt"], **c["variables"])
        assert text == c["expected"], c["case"]


if __name__ == "__main__":
    main()
