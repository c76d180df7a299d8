#!/usr/bin/env python3
"""Renders chat templates with Python's jinja2 as Hugging Face's `apply_chat_template` does, for a
fixed set of conversations (plain, multi-turn, with tools, with a tool call and its result), and
writes the renders as JSON for `cargo run -p model --example compare_templates` to check Seed's
renderer against.

Usage: compare-templates.py TEMPLATE... > renders.json   (needs `pip install jinja2`)
"""
import json
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather now in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "The city's name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "The time now in a zone",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}

# Messages exactly as Seed hands them to a template (model::chat::Message's serialization).
CONTEXTS = [
    {"name": "plain", "tools": None, "messages": [
        {"role": "system", "content": "You are brief."},
        {"role": "user", "content": "Hello, who are you?"}]},
    {"name": "multi-turn", "tools": None, "messages": [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello. How can I help?"},
        {"role": "user", "content": "Name a colour."}]},
    {"name": "tools", "tools": [WEATHER, TIME], "messages": [
        {"role": "system", "content": "You are brief."},
        {"role": "user", "content": "What is the weather in Paris?"}]},
    {"name": "tool-call-and-result", "tools": [WEATHER, TIME], "messages": [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "Ab1Cd2Ef3", "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
        {"role": "tool", "content": "{\"temperature\": 18, \"sky\": \"clear\"}", "tool_call_id": "Ab1Cd2Ef3",
         "name": "get_weather"}]},
]
BOS, EOS = "<|bos|>", "<|eos|>"


def environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def main():
    env = environment()
    renders = {}
    for path in sys.argv[1:]:
        source = open(path, encoding="utf-8").read()
        out = {}
        try:
            template = env.from_string(source)
        except Exception as e:  # noqa: BLE001 (a template that does not parse is a result)
            out = {c["name"]: {"error": f"parse: {e}"} for c in CONTEXTS}
            renders[path] = out
            continue
        for c in CONTEXTS:
            try:
                text = template.render(messages=c["messages"], tools=c["tools"], documents=None,
                                       add_generation_prompt=True, bos_token=BOS, eos_token=EOS)
                out[c["name"]] = {"ok": text}
            except Exception as e:  # noqa: BLE001
                out[c["name"]] = {"error": str(e)}
        renders[path] = out
    json.dump({"bos": BOS, "eos": EOS, "contexts": CONTEXTS, "renders": renders}, sys.stdout, ensure_ascii=False)


main()
