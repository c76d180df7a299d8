"""End-to-end checks of `seed serve`'s /v1/messages with the official `anthropic` Python SDK.

Usage: anthropic_client.py PORT API_KEY
Exits non-zero with a message at the first failed check; prints a summary line.
"""
import json
import sys

import anthropic

port, api_key = int(sys.argv[1]), sys.argv[2]
# The SDK sends the key as `x-api-key`.
client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key=api_key, max_retries=0, timeout=120)
passed = 0


def check(name, cond, detail=""):
    global passed
    if not cond:
        print(f"FAILED: {name}: {detail}", flush=True)
        sys.exit(1)
    passed += 1


QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
# This SDK has no `temperature` argument; the server takes Anthropic's field as sent in the body.
GREEDY = {"temperature": 0}

# A message, whole.
m = client.messages.create(model="any", max_tokens=16, extra_body=GREEDY, system="Answer briefly.", messages=QUESTION)
check("message type", m.type == "message" and m.role == "assistant", m)
check("message id", m.id.startswith("msg_"), m.id)
check("text block", len(m.content) == 1 and m.content[0].type == "text" and m.content[0].text, m.content)
check("stop reason", m.stop_reason in ("end_turn", "max_tokens"), m.stop_reason)
check("usage", m.usage.input_tokens > 0 and 0 < m.usage.output_tokens <= 16, m.usage)
answer = m.content[0].text

# Streamed with the SDK's helper: the same greedy text, and a final message.
with client.messages.stream(model="any", max_tokens=16, extra_body=GREEDY, system="Answer briefly.",
                            messages=QUESTION) as stream:
    streamed = "".join(stream.text_stream)
    final = stream.get_final_message()
check("stream text", streamed == answer, (streamed, answer))
check("stream final", final.content[0].text == answer and final.stop_reason == m.stop_reason, final)
check("stream usage", final.usage.output_tokens == m.usage.output_tokens, final.usage)

# A stop sequence ends the answer there and is named.
word = answer.split()[1]
st = client.messages.create(model="any", max_tokens=16, extra_body=GREEDY, system="Answer briefly.", messages=QUESTION,
                            stop_sequences=[word])
check("stop_sequence", st.stop_reason == "stop_sequence" and st.stop_sequence == word, (st.stop_reason, st.stop_sequence))

WEATHER = {
    "name": "get_weather",
    "description": "The weather now in a city",
    "input_schema": {"type": "object", "properties": {
        "city": {"type": "string", "enum": ["Paris", "London", "Tokyo"]},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": False},
}
ASK = [{"role": "user", "content": "What is the weather in Paris right now?"}]


def valid_input(i):
    return set(i) == {"city", "unit"} and i["city"] in ("Paris", "London", "Tokyo") and i["unit"] in ("celsius", "fahrenheit")


# Tool use, forced: a tool_use block with input valid against the schema.
t = client.messages.create(model="any", max_tokens=60, extra_body=GREEDY, messages=ASK, tools=[WEATHER],
                           tool_choice={"type": "any"})
uses = [b for b in t.content if b.type == "tool_use"]
check("tool_use block", len(uses) >= 1 and uses[0].name == "get_weather", t.content)
check("tool_use id", uses[0].id.startswith("toolu_"), uses[0].id)
check("tool_use input", valid_input(uses[0].input), uses[0].input)
check("tool_use stop", t.stop_reason == "tool_use", t.stop_reason)

# Streamed tool use: the SDK puts the input_json deltas together into the same input.
with client.messages.stream(model="any", max_tokens=60, extra_body=GREEDY, messages=ASK, tools=[WEATHER],
                            tool_choice={"type": "tool", "name": "get_weather"}) as stream:
    events = [e.type for e in stream]
    final = stream.get_final_message()
fuses = [b for b in final.content if b.type == "tool_use"]
check("stream tool_use", len(fuses) == 1 and fuses[0].input == uses[0].input, final.content)
check("stream events", events[0] == "message_start" and "input_json" in events and events[-1] == "message_stop", events)
check("stream tool stop", final.stop_reason == "tool_use", final.stop_reason)

# The tool's result goes back as a tool_result block; the answer is text.
r = client.messages.create(model="any", max_tokens=30, extra_body=GREEDY, tools=[WEATHER], messages=ASK + [
    {"role": "assistant", "content": [{"type": "tool_use", "id": uses[0].id, "name": "get_weather", "input": uses[0].input}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id,
                                  "content": json.dumps({"temperature": 18, "sky": "clear"})}]},
], tool_choice={"type": "none"})
check("after tool_result", r.content and r.content[0].type == "text", r.content)

# Structured output: `output_config.format` with a JSON schema.
CAPITAL = {"type": "object", "properties": {"capital": {"type": "string", "maxLength": 30}},
           "required": ["capital"], "additionalProperties": False}
s = client.messages.create(model="any", max_tokens=40, extra_body=GREEDY, messages=QUESTION,
                           output_config={"format": {"type": "json_schema", "schema": CAPITAL}})
check("structured", isinstance(json.loads(s.content[0].text)["capital"], str), s.content)

# Errors arrive as the SDK's typed exceptions with Anthropic's envelope.
try:
    client.messages.create(model="any", max_tokens=16, messages=QUESTION, extra_body={"temperature": 3})
    check("temperature 3 refused", False, "no error")
except anthropic.BadRequestError as e:
    check("400 envelope", e.status_code == 400 and e.body["type"] == "error"
          and e.body["error"]["type"] == "invalid_request_error", e.body)
try:
    client.messages.create(model="no-such-model", max_tokens=16, messages=QUESTION)
    check("unknown model refused", False, "no error")
except anthropic.NotFoundError as e:
    check("404 envelope", e.body["error"]["type"] == "not_found_error", e.body)
try:
    anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="wrong", max_retries=0).messages.create(
        model="any", max_tokens=4, messages=QUESTION)
    check("wrong key refused", False, "no error")
except anthropic.AuthenticationError as e:
    check("401 envelope", e.body["error"]["type"] == "authentication_error", e.body)

print(f"anthropic SDK {anthropic.__version__}: {passed} checks passed", flush=True)
