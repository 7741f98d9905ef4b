#!/usr/bin/env python3
"""`ipt serve` against transformers on SmolLM2-135M-Instruct (the Q4_1 GGUF that
scripts/get-models.sh imports): the chat prompt's token count (our chat template + tokenizer vs
apply_chat_template) and each greedy token's logprob and top-3 logprobs (ours over HTTP vs
log_softmax of transformers' scores on the same GGUF, dequantized), both in float32.

  .venv/bin/python scripts/compare-serve-logprobs.py build/ipt models/smollm2-135m-instruct
"""
import json, os, subprocess, sys, threading, urllib.request
import torch, transformers
ipt, model_dir, gguf = sys.argv[1], sys.argv[2], os.path.expanduser("~/.cache/inplace-ttt/SmolLM2-135M-Instruct.Q4_1.gguf")
messages = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
proc = subprocess.Popen([ipt, "-t", "2", "serve", "-m", model_dir, "--port", "0", "--dtype", "float32", "--device", "cpu"],
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
for line in proc.stdout:
    if line.startswith("listening on http://127.0.0.1:"):
        port = int(line.split(":")[2].split()[0]); break
body = json.dumps({"messages": messages, "max_tokens": 8, "temperature": 0, "logprobs": True, "top_logprobs": 3}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", body, {"Content-Type": "application/json"})
ours = json.load(urllib.request.urlopen(req, timeout=300))
proc.terminate(); proc.wait()
tok = transformers.AutoTokenizer.from_pretrained(model_dir)
ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
if not torch.is_tensor(ids): ids = ids["input_ids"]
print("prompt tokens: ipt", ours["usage"]["prompt_tokens"], " transformers", ids.shape[1])
m = transformers.AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf), dtype=torch.float32)
out = m.generate(ids, max_new_tokens=8, do_sample=False, output_scores=True, return_dict_in_generate=True)
content = ours["choices"][0]["logprobs"]["content"]
print("ipt text:", repr(ours["choices"][0]["message"]["content"]))
print("hf  text:", repr(tok.decode(out.sequences[0, ids.shape[1]:], skip_special_tokens=True)))
worst = 0
for i, t in enumerate(content):
    lp = torch.log_softmax(out.scores[i][0].float(), -1)
    tid = out.sequences[0, ids.shape[1] + i].item()
    hf_top = [round(lp[j].item(), 4) for j in lp.topk(3).indices]
    print(f"{i}: ipt {t['token']!r} {t['logprob']:.4f} top {[round(x['logprob'], 4) for x in t['top_logprobs']]} | hf {tok.decode([tid])!r} {lp[tid].item():.4f} top {hf_top}")
    worst = max(worst, abs(t["logprob"] - lp[tid].item()))
print(f"max |logprob difference| over the tokens: {worst:.2e}")
