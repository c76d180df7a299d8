"""End-to-end checks of `seed serve` with the official `openai` Python SDK.

Usage: openai_client.py PORT API_KEY
Exits non-zero with a message at the first failed check; prints a summary line.
"""
import struct
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


# Structured output: the SDK's parse() with a Pydantic model.
import pydantic  # noqa: E402  (installed with the SDK)


class City(pydantic.BaseModel):
    # Bounded fields: a schema decides what can be said, not how much (see the README).
    # No other keys: OpenAI's strict mode asks for `additionalProperties: false`, which
    # parse() adds itself and the Responses call below takes from this.
    model_config = pydantic.ConfigDict(extra="forbid")
    name: str = pydantic.Field(max_length=30)
    country: str = pydantic.Field(max_length=30)
    founded: int = pydantic.Field(ge=-3000, le=3000)


parsed = client.chat.completions.parse(model="any", messages=[{"role": "user", "content": "Describe Paris as JSON."}],
                                       response_format=City, max_tokens=120, temperature=0)
choice = parsed.choices[0]
check("parse finish", choice.finish_reason == "stop", choice)
check("parse object", isinstance(choice.message.parsed, City) and choice.message.parsed.name, choice.message)

# Tools: required gives a call whose arguments the schema allows; the stream says the same.
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather now in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "enum": ["Paris", "London", "Tokyo"]},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": False}}}
ASK = [{"role": "user", "content": "What is the weather in Paris right now?"}]
import json  # noqa: E402

t = client.chat.completions.create(model="any", messages=ASK, tools=[WEATHER], tool_choice="required",
                                   max_tokens=60, temperature=0)
call = t.choices[0].message.tool_calls[0]
args = json.loads(call.function.arguments)
check("tool call", call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_"), call)
check("tool args", args["city"] in ("Paris", "London", "Tokyo") and args["unit"] in ("celsius", "fahrenheit"), args)
check("tool finish", t.choices[0].finish_reason == "tool_calls", t.choices[0])
pieces, name, finish = [], None, None
for c in client.chat.completions.create(model="any", messages=ASK, tools=[WEATHER], tool_choice="required",
                                        max_tokens=60, temperature=0, stream=True):
    if not c.choices:
        continue
    for d in c.choices[0].delta.tool_calls or []:
        if d.function.name:
            name = d.function.name
        pieces.append(d.function.arguments or "")
    finish = c.choices[0].finish_reason or finish
check("streamed tool call", name == "get_weather" and "".join(pieces) == call.function.arguments, (name, pieces))
check("streamed tool finish", finish == "tool_calls", finish)
auto = client.chat.completions.create(model="any", messages=ASK, tools=[WEATHER], max_tokens=60, temperature=0)
m = auto.choices[0].message
check("auto answers", (m.tool_calls and json.loads(m.tool_calls[0].function.arguments)) or m.content, m)
after = client.chat.completions.create(model="any", max_tokens=20, temperature=0, tools=[WEATHER], messages=ASK + [
    {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
    {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 18})}])
check("after a tool result", after.choices[0].message.content is not None, after)

# The Responses API: text, a schema, function tools, and its event stream.
r = client.responses.create(model="any", input="What is the capital of France?", instructions="Answer briefly.",
                            max_output_tokens=16, temperature=0)
check("response object", r.object == "response" and r.id.startswith("resp_") and r.status in ("completed", "incomplete"), r)
check("response text", bool(r.output_text), r.output)
check("response usage", r.usage.input_tokens > 0 and 0 < r.usage.output_tokens <= 16, r.usage)
events = list(client.responses.create(model="any", input="What is the capital of France?", instructions="Answer briefly.",
                                      max_output_tokens=16, temperature=0, stream=True))
deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
check("response stream text", deltas == r.output_text, (deltas, r.output_text))
check("response stream ends", events[0].type == "response.created" and events[-1].type in ("response.completed", "response.incomplete"), [e.type for e in events])
check("response stream order", [e.sequence_number for e in events] == list(range(len(events))), events)
rs = client.responses.create(model="any", input="Describe Paris as JSON.", max_output_tokens=120, temperature=0,
                             text={"format": {"type": "json_schema", "name": "city", "strict": True,
                                              "schema": City.model_json_schema()}})
check("response schema", City.model_validate_json(rs.output_text).name, rs.output_text)
rt = client.responses.create(model="any", input="What is the weather in Paris right now?", max_output_tokens=60,
                             temperature=0, tool_choice="required",
                             tools=[{"type": "function", "name": "get_weather", **{k: v for k, v in WEATHER["function"].items() if k != "name"}}])
fc = [o for o in rt.output if o.type == "function_call"]
check("response function call", fc and fc[0].name == "get_weather" and json.loads(fc[0].arguments)["city"], rt.output)
try:
    client.responses.create(model="any", input="Hi", previous_response_id="resp_x")
    check("previous_response_id refused", False, "no error")
except openai.BadRequestError as e:
    check("previous_response_id 400", e.body.get("param") == "previous_response_id", e.body)

# Embeddings: the SDK asks for base64 and decodes it; one unit vector per input, in order.
emb = client.embeddings.create(model="any", input=["Paris is in France.", "Tokyo is in Japan."])
check("embeddings count", [d.index for d in emb.data] == [0, 1], emb)
v = emb.data[0].embedding
check("embeddings width", len(v) == 576, len(v))
check("embeddings unit length", abs(sum(x * x for x in v) - 1.0) < 1e-4, sum(x * x for x in v))
check("embeddings usage", emb.usage.prompt_tokens == emb.usage.total_tokens > 0, emb.usage)
as_floats = client.embeddings.create(model="any", input="Paris is in France.", encoding_format="float")
# JSON carries each f32 in its shortest decimal form: rounded back to f32, the same values.
f32 = [struct.unpack("<f", struct.pack("<f", x))[0] for x in as_floats.data[0].embedding]
check("embeddings float = base64", f32 == v, (f32[:4], v[:4]))
try:
    client.embeddings.create(model="any", input="Paris", dimensions=8)
    check("embeddings dimensions refused", False, "no error")
except openai.BadRequestError as e:
    check("embeddings dimensions 400", e.body.get("param") == "dimensions", e.body)

print(f"openai SDK {openai.__version__}: {passed} checks passed", flush=True)
