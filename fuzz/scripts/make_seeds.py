#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into fuzz/seeds/<target>/ from the real
models in Seed's model cache ($SEED_HOME/models, default ~/.cache/seed/models)
and the golden prompts in testdata/golden.

  gguf_parse     each model's header with its arrays cut to 64 entries (the
                 vocabulary, scores, merges), once with its tensor table and once
                 without, plus the first 4 KiB of the file as it is
  tokenizer      the golden prompts and texts, under each flag byte
  chat_template  the models' own templates and a few hostile ones, each over a
                 short conversation
  request_json   chat and completion bodies from the golden cases
"""
import json
import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "fuzz" / "seeds"
MODELS = ["smollm2-135m-instruct", "gemma3-270m"]


def cache():
    home = os.environ.get("SEED_HOME") or (
        os.path.join(os.environ["XDG_CACHE_HOME"], "seed") if os.environ.get("XDG_CACHE_HOME")
        else os.path.join(os.path.expanduser("~"), ".cache", "seed"))
    return Path(home) / "models"


SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.p)[0]
        self.p += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = self.d[self.p:self.p + n]
        self.p += n
        return s

    def value(self, ty):
        if ty in SCALAR:
            return ty, self.take(SCALAR[ty])
        if ty == 8:
            return ty, self.string()
        if ty == 9:
            ety, n = self.take("<I"), self.take("<Q")
            return ty, (ety, [self.value(ety)[1] for _ in range(n)])
        raise ValueError(f"value type {ty}")


def write_value(out, ty, v, cut):
    if ty in SCALAR:
        out += struct.pack(SCALAR[ty], v)
    elif ty == 8:
        out += struct.pack("<Q", len(v)) + v
    else:
        ety, items = v
        items = items[:cut]
        out += struct.pack("<IQ", ety, len(items))
        for it in items:
            write_value(out, ety, it, cut)


def header(path):
    """(version, kvs, tensor infos as raw bytes, header length) of a GGUF file."""
    with open(path, "rb") as f:
        data = f.read(64 << 20)
    r = Reader(data)
    assert data[:4] == b"GGUF", path
    r.p = 4
    version, n_t, n_kv = r.take("<I"), r.take("<Q"), r.take("<Q")
    kvs = []
    for _ in range(n_kv):
        key = r.string()
        ty = r.take("<I")
        kvs.append((key, ty, r.value(ty)[1]))
    start = r.p
    for _ in range(n_t):
        r.string()
        nd = r.take("<I")
        r.p += 8 * nd + 4 + 8
    return version, kvs, data[start:r.p], n_t, data[:4096]


def gguf(version, kvs, tensors, n_t, cut):
    out = bytearray(b"GGUF" + struct.pack("<IQQ", version, n_t, len(kvs)))
    for key, ty, v in kvs:
        out += struct.pack("<Q", len(key)) + key + struct.pack("<I", ty)
        write_value(out, ty, v, cut)
    out += tensors
    return bytes(out)


def put(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


HOSTILE_TEMPLATES = [
    "{% for m in messages %}{{ m.content * 100000 }}{% endfor %}",
    "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",
    "{% for i in range(1000000000) %}x{% endfor %}",
    "{{ raise_exception('no system role') }}",
    "{{ messages[99].content }}{{ messages[-1]['content'][::-1] }}",
    "{% set ns = namespace(a=[]) %}{% for i in range(100) %}{% set ns.a = ns.a + ns.a + [i] %}{% endfor %}{{ ns.a|length }}",
    "{{ strftime_now('%Y-%m-%d') }}{{ bos_token }}{{ eos_token|upper }}",
    "{% for m in messages %}{{ m.content.strip().split(' ')|join('|') }}{% if loop.last %}{{ m.role.startswith('u') }}{% endif %}{% endfor %}",
    "{{ (messages|tojson)|length }}{{ 1/0 }}",
    "{% include 'chat' %}",
    "{{ range(99999999)|list|length }}",
    "{{ '%s' % messages }}{{ messages|map(attribute='role')|unique|list }}",
]


def main():
    models = cache()
    for name in MODELS:
        p = models / f"{name}.gguf"
        if not p.is_file():
            sys.exit(f"{p} is missing: run `seed pull {name}` first")
        version, kvs, tensors, n_t, head = header(p)
        put("gguf_parse", f"{name}-cut64.gguf", gguf(version, kvs, tensors, n_t, 64))
        put("gguf_parse", f"{name}-cut64-notensors.gguf", gguf(version, kvs, b"", 0, 64))
        put("gguf_parse", f"{name}-head4k.gguf", head)
        for key, _, v in kvs:
            if key == b"tokenizer.chat_template":
                put("chat_template", f"{name}.jinja", v + b"\0system\0Be brief.\0user\0Hello\0assistant\0Hi!\0user\0Again")
    for i, t in enumerate(HOSTILE_TEMPLATES):
        put("chat_template", f"hostile-{i:02}.jinja", t + "\0user\0hello world\0assistant\0hi")

    texts = []
    for golden in sorted((ROOT / "testdata" / "golden").glob("*.json")):
        g = json.loads(golden.read_text())
        if g.get("meta", {}).get("chat_template"):
            put("chat_template", f"golden-{golden.stem}.jinja",
                g["meta"]["chat_template"] + "\0system\0Be brief.\0user\0Hello\0assistant\0Hi!\0user\0Again")
        for c in g.get("raw_completions", []):
            texts.append(c["prompt"])
            texts.append(c.get("generated_text", ""))
        for c in g.get("chat_completions", []):
            texts.append(c.get("templated_prompt", ""))
            for m in c["messages"]:
                texts.append(m["content"])
    texts = [t for t in dict.fromkeys(texts) if t]
    for i, t in enumerate(texts):
        put("tokenizer", f"golden-{i:03}", bytes([i % 8]) + t.encode())
    put("tokenizer", "ids", bytes([8 | 16]) + struct.pack("<6I", 0, 1, 2, 49151, 262143, 0xFFFFFFFF))
    put("tokenizer", "invalid-utf8", b"\x00\xff\xfe\xc3\x28 abc \xe2\x82")

    for i, t in enumerate(texts[:12]):
        put("request_json", f"chat-{i:02}.json", json.dumps({
            "model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": t}],
            "max_tokens": 8, "temperature": 0.7, "top_p": 0.9, "stop": ["\n\n"], "seed": i,
            "logprobs": True, "top_logprobs": 2, "stream": i % 2 == 0,
            **({"stream_options": {"include_usage": True}} if i % 2 == 0 else {})}))
        put("request_json", f"completion-{i:02}.json", json.dumps({
            "model": "gemma3-270m", "prompt": [t, [1, 2, 3]] if i % 3 == 0 else t, "max_tokens": 4, "n": 2,
            "logit_bias": {"15": -100, "16": 5}, "logprobs": 1, "top_k": 40, "min_p": 0.05,
            "frequency_penalty": 0.5, "presence_penalty": -0.5, "repetition_penalty": 1.1}))
    put("request_json", "tools.json", json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "auto", "response_format": {"type": "text"}}))
    for target in ("gguf_parse", "tokenizer", "chat_template", "request_json"):
        files = list((OUT / target).iterdir())
        print(f"{target}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
