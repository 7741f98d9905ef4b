"""The bundled model without its TTT tensors and with ttt_mode off: the starting point of the
no-TTT twin (the slow weights, W_down = W0 in the TTT layers, are the bundled model's).
Usage: python3 strip_ttt.py MODEL_DIR OUT_DIR"""
import json, os, shutil, struct, sys

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
with open(os.path.join(src, "model.safetensors"), "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
meta = header.pop("__metadata__", None)
keep = {k: v for k, v in header.items() if ".ttt_" not in k}
out_header, chunks, offset = {}, [], 0
for k in sorted(keep, key=lambda k: keep[k]["data_offsets"][0]):
    b, e = keep[k]["data_offsets"]
    chunks.append(data[b:e])
    out_header[k] = dict(keep[k], data_offsets=[offset, offset + e - b])
    offset += e - b
if meta is not None:
    out_header["__metadata__"] = meta
h = json.dumps(out_header, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(dst, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))
config = json.load(open(os.path.join(src, "config.json")))
config["ttt_mode"] = False
json.dump(config, open(os.path.join(dst, "config.json"), "w"), indent=2)
for t in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(src, t), dst)
print(f"{dst}: {len(keep)} tensors kept, {len(header) - len(keep)} TTT tensors dropped")
