"""End-to-end checks of `seed serve` with the official `openai` Python SDK.

Usage: openai_client.py PORT API_KEY
Exits non-zero with a message at the first failed check; prints a summary line.
"""
import sys

import openai

port, api_key = int(sys.argv[1]), sys.argv[2]
client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=api_key, max_retries=0, timeout=120)
passed = 0


def check(name, cond, detail=""):
    global passed
    if not cond:
        print(f"FAILED: {name}: {detail}", flush=True)
        sys.exit(1)
    passed += 1


QUESTION = [{"role": "user", "content": "What is the capital of France?"}]

# Chat, whole.
r = client.chat.completions.create(model="any", messages=QUESTION, max_tokens=16, temperature=0)
check("chat object", r.object == "chat.completion", r)
check("chat id", r.id.startswith("chatcmpl-"), r.id)
check("chat fingerprint", (r.system_fingerprint or "").startswith("fp_"), r.system_fingerprint)
check("chat role", r.choices[0].message.role == "assistant", r)
answer = r.choices[0].message.content
check("chat content", bool(answer), r)
check("chat finish", r.choices[0].finish_reason in ("stop", "length"), r)
check("chat usage", r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r.usage)
check("chat cached tokens", isinstance(r.usage.prompt_tokens_details.cached_tokens, int), r.usage)

# Chat, streamed: the same greedy text, and a usage chunk.
chunks = list(client.chat.completions.create(model="any", messages=QUESTION, max_tokens=16, temperature=0,
                                             stream=True, stream_options={"include_usage": True}))
streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
check("chat stream text", streamed == answer, (streamed, answer))
check("chat stream usage", chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == r.usage.completion_tokens,
      chunks[-1])
check("chat stream finish", [c.choices[0].finish_reason for c in chunks if c.choices][-1] == r.choices[0].finish_reason, chunks)

# Completions, whole and streamed: llama.cpp's greedy continuation.
c = client.completions.create(model="any", prompt="The capital of France is", max_tokens=4, temperature=0)
check("completion object", c.object == "text_completion" and c.id.startswith("cmpl-"), c)
check("completion text", c.choices[0].text == " Paris.\n\n", c.choices[0].text)
parts = list(client.completions.create(model="any", prompt="The capital of France is", max_tokens=4, temperature=0,
                                       stream=True))
check("completion stream", "".join(p.choices[0].text for p in parts if p.choices) == " Paris.\n\n", parts)

# Stop strings.
s = client.completions.create(model="any", prompt="The capital of France is", max_tokens=8, temperature=0, stop=["."])
check("stop text", s.choices[0].text == " Paris", s.choices[0].text)
check("stop reason", s.choices[0].finish_reason == "stop", s.choices[0])

# Seeds: the same seed repeats; other seeds give other text.
def sampled(seed):
    out = client.chat.completions.create(model="any", messages=[{"role": "user", "content": "Tell me a story."}],
                                         max_tokens=24, temperature=1.0, seed=seed)
    return out.choices[0].message.content


first = sampled(42)
check("seed repeats", sampled(42) == first, first)
check("seeds differ", any(sampled(s) != first for s in (43, 44, 45)), first)

# n choices.
n = client.chat.completions.create(model="any", messages=QUESTION, max_tokens=8, temperature=1.0, seed=1, n=3)
check("n choices", [ch.index for ch in n.choices] == [0, 1, 2], n.choices)

# Log-probs, chat and completions formats.
lp = client.chat.completions.create(model="any", messages=QUESTION, max_tokens=5, temperature=0,
                                    logprobs=True, top_logprobs=2)
content = lp.choices[0].logprobs.content
check("chat logprobs count", len(content) == lp.usage.completion_tokens, content)
check("chat top_logprobs", all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in content), content)
check("chat greedy is top", all(t.top_logprobs[0].token == t.token for t in content), content)
cl = client.completions.create(model="any", prompt="The capital of France is", max_tokens=4, temperature=0, logprobs=2)
lps = cl.choices[0].logprobs
check("completion logprobs", lps.tokens == [" Paris", ".", "\n", "\n"], lps)
check("completion top_logprobs", all(len(t) == 2 for t in lps.top_logprobs), lps)
check("completion logprob value", abs(lps.token_logprobs[0] + 0.2484) < 0.01, lps.token_logprobs)

# Errors arrive as the SDK's typed exceptions with OpenAI's envelope.
try:
    client.chat.completions.create(model="any", messages=QUESTION, temperature=5)
    check("temperature 5 refused", False, "no error")
except openai.BadRequestError as e:
    check("400 param", e.status_code == 400 and e.body.get("param") == "temperature", e.body)
try:
    client.chat.completions.create(model="no-such-model", messages=QUESTION)
    check("unknown model refused", False, "no error")
except openai.NotFoundError as e:
    check("404", e.status_code == 404, e)
try:
    openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong", max_retries=0).models.list()
    check("wrong key refused", False, "no error")
except openai.AuthenticationError as e:
    check("401", e.status_code == 401, e)
models = client.models.list()
check("models", [m.id for m in models.data] == ["smollm2-135m-instruct", "any"], models)

print(f"openai SDK {openai.__version__}: {passed} checks passed", flush=True)
