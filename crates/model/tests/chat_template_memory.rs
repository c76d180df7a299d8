//! Hostile chat templates that grow memory faster than they burn fuel: each must
//! end in a typed error quickly, not abort the process (fuzz finding 1 in
//! docs/FUZZING.md, input fuzz/regressions/chat_template-list-doubling).

use std::time::{Duration, Instant};

use model::chat::{ChatTemplate, ChatTemplateError, Message};

/// Renders `src` with the default limits and returns the error it must end in,
/// within a few seconds (debug build).
fn fails(src: &str) -> ChatTemplateError {
    let start = Instant::now();
    let t = ChatTemplate::new(src, "<s>", "</s>").expect("template compiles");
    let err = t.render(&[Message::new("user", "hello world")], true).expect_err(src);
    assert!(start.elapsed() < Duration::from_secs(10), "{src}: took {:?}", start.elapsed());
    err
}

fn out_of_memory(src: &str) {
    let err = fails(src);
    assert!(matches!(err, ChatTemplateError::OutOfMemory(..)), "{src}: {err}");
}

#[test]
fn the_fuzzers_list_doubling_template_fails_cleanly() {
    let input = include_bytes!("../../../fuzz/regressions/chat_template-list-doubling");
    let text = String::from_utf8_lossy(input);
    let src = text.split('\0').next().unwrap_or_default();
    out_of_memory(src);
}

#[test]
fn doubling_lists_fails() {
    out_of_memory("{% set ns = namespace(a=[1]) %}{% for i in range(100) %}{% set ns.a = ns.a + ns.a %}{% endfor %}{{ ns.a|length }}");
    out_of_memory("{% set ns = namespace(a=[1]) %}{% for i in range(100) %}{% set ns.a = ns.a * 2 %}{% endfor %}{{ ns.a|length }}");
    out_of_memory("{{ ([1] * 1000000000)|list|length }}");
}

#[test]
fn doubling_strings_fails() {
    out_of_memory("{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}");
    out_of_memory("{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}");
    // minijinja's own cap on one repetition (100 MB) may stop this one first.
    let err = fails("{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s * 2 %}{% endfor %}{{ ns.s|length }}");
    assert!(matches!(&err, ChatTemplateError::OutOfMemory(..)) || err.to_string().contains("too large"), "{err}");
    out_of_memory("{{ ('a' * 1000000000)|length }}");
    out_of_memory("{{ ('a' * 100000000 + 'b' * 100000000 + 'c' * 100000000)|length }}");
}

#[test]
fn doubling_through_captures_and_macros_fails() {
    out_of_memory("{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set t %}{{ ns.s }}{{ ns.s }}{% endset %}{% set ns.s = t %}{% endfor %}{{ ns.s|length }}");
    out_of_memory("{% macro d(s) %}{{ s }}{{ s }}{% endmacro %}{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = d(ns.s) %}{% endfor %}{{ ns.s|length }}");
    out_of_memory("{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s %}{% filter upper %}{{ ns.s }}{{ ns.s }}{% endfilter %}{% endset %}{% endfor %}{{ ns.s|length }}");
}

#[test]
fn filters_and_methods_that_multiply_fail() {
    // A list of references to one big string, joined or printed.
    out_of_memory("{% set big = 'x' * 100000 %}{{ ([big] * 100000)|join|length }}");
    out_of_memory("{% set big = 'x' * 100000 %}{{ ([big] * 100000)|string|length }}");
    out_of_memory("{% set big = 'x' * 100000 %}{{ ([big] * 100000)|tojson|length }}");
    out_of_memory("{% set big = 'x' * 100000 %}{{ ('' ~ [big] * 100000)|length }}");
    out_of_memory("{% set big = 'x' * 100000 %}{{ ', '.join([big] * 100000)|length }}");
    // Quadratic replace, a huge width.
    out_of_memory("{% set big = 'x' * 100000 %}{{ big|replace('x', big)|length }}");
    out_of_memory("{% set big = 'x' * 100000 %}{{ big.replace('x', big)|length }}");
    out_of_memory("{{ ('\n' * 100000)|indent(100000)|length }}");
    out_of_memory("{{ '%999999999s'|format('x')|length }}");
    out_of_memory("{{ [1, 2]|batch(1000000000)|list|length }}");
    out_of_memory("{{ [1, 2]|slice(1000000000)|list|length }}");
}

#[test]
fn huge_ranges_and_plain_loops_still_fail_as_before() {
    // minijinja caps range() itself; fuel stops long loops.
    let err = fails("{% for i in range(1000000000) %}{% endfor %}");
    assert!(matches!(err, ChatTemplateError::Render(_)), "{err}");
    let err = fails("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}");
    assert!(matches!(err, ChatTemplateError::OutOfFuel(_)), "{err}");
}

#[test]
fn literal_text_in_a_capture_loop_is_charged() {
    let raw = "y".repeat(10_000);
    let src = format!(
        "{{% set ns = namespace(s='') %}}{{% for i in range(100000) %}}{{% set t %}}{raw}{{% endset %}}{{% set ns.s = ns.s ~ t %}}{{% endfor %}}"
    );
    let t = ChatTemplate::new(&src, "", "").expect("compiles").with_memory_budget(64 << 20);
    let err = t.render(&[], false).expect_err("budget");
    assert!(matches!(err, ChatTemplateError::OutOfMemory(..)), "{err}");
}

/// What plain minijinja (no rewriting, no budget) renders.
/// Plain minijinja, with what a chat template changes on purpose to render as Hugging Face's
/// jinja2 does: `trim_blocks` and `lstrip_blocks`, `tojson` as Python's `json.dumps`, and
/// `None`, lists and dicts printed as Python prints them.
fn plain(src: &str, messages: &[Message]) -> String {
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_formatter(|out, state, value| {
        use minijinja::value::ValueKind;
        match value.kind() {
            ValueKind::None => out.write_str("None").map_err(minijinja::Error::from),
            ValueKind::Seq | ValueKind::Map => {
                let json = serde_json::to_value(value).expect("a JSON value");
                out.write_str(&model::chat::pyjson::python_str(&json)).map_err(minijinja::Error::from)
            }
            _ => minijinja::escape_formatter(out, state, value),
        }
    });
    minijinja_contrib::add_to_environment(&mut env);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_filter("tojson", |v: minijinja::Value| {
        let json = serde_json::to_value(&v).expect("a JSON value");
        minijinja::Value::from_safe_string(model::chat::pyjson::to_string(&json, &Default::default()))
    });
    let ctx = minijinja::context! { messages => messages, add_generation_prompt => true, bos_token => "<s>", eos_token => "</s>" };
    env.render_str(src, ctx).expect("plain minijinja renders")
}

#[test]
fn ordinary_templates_render_as_plain_minijinja_does() {
    // Operators, filters, methods, macros, loops, blocks and jumps through the rewritten bytecode.
    let sources = [
        "{%- macro role(m) -%}<|{{ m.role }}|>{%- endmacro -%}\
         {%- set ns = namespace(n=0, acc=[]) -%}\
         {%- for m in messages -%}\
           {%- if m.role == 'system' %}{{ role(m) ~ m.content.strip() }}\n\
           {%- elif loop.first and m.role != 'system' %}{{ '<|system|>default' + '\\n' }}{{ role(m) + m.content|trim }}\n\
           {%- else %}{{ role(m) }}{{ m.content|replace('o', '0')|upper }}\n{%- endif -%}\
           {%- set ns.n = ns.n + m.content|length * 2 -%}{%- set ns.acc = ns.acc + [loop.index] -%}\
         {%- endfor -%}\
         {{ ns.n }} {{ ns.acc|join(',') }} {{ '%s-%d'|format('x', 3) }} {{ 'a,b'.split(',')|tojson }}\
         {%- if add_generation_prompt %}<|assistant|>{% endif %}",
        "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content }} [/INST]{% else %}{{ m.content }}{{ eos_token }}{% endif %}{% endfor %}",
        "{% for m in messages %}{{ loop.index0 }}{{ loop.cycle('a', 'b') }}{% if loop.last %}.{% endif %}{% endfor %}{{ messages|map(attribute='role')|join('/') }}",
        "{% block head %}H{{ 1 + 2 * 3 }}{% endblock %}{% set x %}{{ 'cap' ~ 1 }}{% endset %}{{ x|upper }}{% filter lower %}ABC{% endfilter %}",
        "{% for m in messages recursive %}{{ m.role }}{% endfor %}{{ [1, 2] + [3] }}{{ (['a'] * 3)|join }}{{ 'ab' * 2 }}{{ {'k': 'v'}|items|list }}",
        "{{ 'x'|indent(2) }}{{ [3, 1, 2]|sort|reverse|list }}{{ 'Hello'.lower().replace('l', 'L') }}",
    ];
    let msgs = [Message::new("user", " hello "), Message::new("assistant", "foo"), Message::new("user", "bar")];
    for src in sources {
        let t = ChatTemplate::new(src, "<s>", "</s>").expect("compiles");
        assert_eq!(t.render(&msgs, true).expect("renders"), plain(src, &msgs), "{src}");
    }
}

#[test]
fn long_conversations_fit_in_the_default_budget() {
    // An accumulator template over 2,000 messages of 2 KB: what real templates do.
    let src =
        "{%- set ns = namespace(msgs=[]) -%}{%- for m in messages -%}{%- set ns.msgs = ns.msgs + [m] -%}{%- endfor -%}\
        {%- for m in ns.msgs -%}{{ '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>\n' }}{%- endfor -%}";
    let t = ChatTemplate::new(src, "", "").expect("compiles");
    let msgs: Vec<Message> = (0..2000).map(|i| Message::new("user", format!("{i}{}", "z".repeat(2000)))).collect();
    let out = t.render(&msgs, false).expect("renders");
    assert!(out.len() > 4_000_000);
}

#[test]
fn reverse_slices_of_empty_values_do_not_panic() {
    // minijinja 2.24 indexes past the end here (fuzz/regressions/chat_template-empty-reverse-slice).
    let t = ChatTemplate::new(
        "{{ messages[-1]['content'][::-1] }}|{{ ''[::-1] }}|{{ [][::-1] }}|{{ 'abc'[0:5:-1] }}",
        "",
        "",
    )
    .expect("compiles");
    assert_eq!(t.render(&[Message::new("user", "")], false).expect("renders"), "||[]|");
    // Python's rules for negative steps.
    let src = "{{ 'abcdef'[::-1] }} {{ 'abcdef'[::-2] }} {{ 'abcdef'[4:1:-1] }} {{ 'abcdef'[-2::-1] }} {{ 'abcdef'[10:-10:-3] }} {{ [1, 2, 3][::-1] }}";
    let t = ChatTemplate::new(src, "", "").expect("compiles");
    assert_eq!(t.render(&[], false).expect("renders"), "fedcba fdb edc edcba fc [3, 2, 1]");
    let msgs = [Message::new("user", "hello")];
    let src = "{{ messages[0].content[1:4] }}{{ messages[::-1]|length }}{{ 'abc'[::] }}";
    let t = ChatTemplate::new(src, "", "").expect("compiles");
    assert_eq!(t.render(&msgs, false).expect("renders"), plain(src, &msgs));
}
