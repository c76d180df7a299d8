//! A memory budget for one chat-template render.
//!
//! minijinja's fuel bounds the number of instructions a template runs, not the
//! memory they allocate: `{% set ns.a = ns.a + ns.a %}` in a loop doubles a list
//! per instruction, and `'x' * 100000000` or a macro that emits its argument
//! twice does the same to strings. A template comes from a stranger's GGUF, so
//! such a template must fail with an error, not take the process down.
//!
//! minijinja has no hook for its operators, so the compiled bytecode is
//! rewritten before it runs (minijinja's `unstable_machinery`, pinned to one
//! version for that reason):
//!
//! - `+`, `*` and `~` become calls to checked functions that compute the size
//!   of the result from their operands and charge it to the budget *before*
//!   anything is allocated, then do the operation;
//! - every filter and method call is preceded by a check that its arguments
//!   (walked to their full printed size, a walk that stops at the budget) and,
//!   for the filters that take a size (`indent`, `batch`, `format` widths,
//!   `replace` …), the result it would produce fit in what is left, and is
//!   followed by a charge for the value it returned;
//! - every emitted value, including the template's literal text, is charged
//!   through the formatter, which bounds what captures (`{% set x %}…`, macro
//!   calls, `{% filter %}` blocks) accumulate.
//!
//! The budget is cumulative: bytes once charged stay charged for the render,
//! so the memory a render holds at any moment is below it (give or take the
//! bookkeeping of lazy sequences, which are charged as if materialised).

use std::cell::Cell;
use std::sync::{Arc, OnceLock};

use minijinja::machinery::{CompiledTemplate, Instruction, Instructions, TemplateConfig, WhitespaceConfig};
use minijinja::value::{Rest, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Expression, Output, State, Value};

/// What one slot of a materialised list costs.
const SLOT: usize = std::mem::size_of::<Value>();
/// What a list item costs in a printed list, beyond the item itself (`, `).
const ITEM: usize = 8;
/// How deep the size walk follows nested lists and maps before giving up.
const MAX_WALK_DEPTH: usize = 256;

/// Names of the checked functions the rewritten bytecode calls. None of them is
/// a valid Jinja identifier, so a template cannot define or shadow them.
const ADD: &str = "seed:+";
const MUL: &str = "seed:*";
const CONCAT: &str = "seed:~";
const PRECHECK: &str = "seed:check-call";
const CHARGE: &str = "seed:charge";
const SLICE: &str = "seed:slice";
const ITER: &str = "seed:iter";

thread_local! {
    static LEFT: Cell<usize> = const { Cell::new(usize::MAX) };
    static EXCEEDED: Cell<bool> = const { Cell::new(false) };
}

/// The budget of the render running on this thread; reset when dropped.
pub(super) struct Budget(());

impl Budget {
    /// Starts a render with `bytes` to spend.
    pub(super) fn start(bytes: usize) -> Budget {
        LEFT.set(bytes);
        EXCEEDED.set(false);
        Budget(())
    }

    /// Whether the render ran past the budget (the error it got may have been
    /// wrapped by the template's own error handling).
    pub(super) fn exceeded(&self) -> bool {
        EXCEEDED.get()
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        LEFT.set(usize::MAX);
    }
}

fn over(what: &str) -> Error {
    EXCEEDED.set(true);
    Error::new(ErrorKind::InvalidOperation, format!("{what} would exceed the template's memory budget"))
}

/// Spends `bytes` (`None`: the size overflowed) or fails.
fn charge(bytes: Option<usize>, what: &str) -> Result<(), Error> {
    let left = LEFT.get();
    match bytes {
        Some(b) if b <= left => {
            LEFT.set(left - b);
            Ok(())
        }
        _ => Err(over(what)),
    }
}

/// Fails unless `bytes` fit in what is left, without spending them.
fn fits(bytes: Option<usize>, what: &str) -> Result<(), Error> {
    match bytes {
        Some(b) if b <= LEFT.get() => Ok(()),
        _ => Err(over(what)),
    }
}

/// The size of `v` printed (strings by their length, lists and maps item by
/// item, recursively), or `None` once it passes `limit`. The walk costs at most
/// `limit / ITEM` steps, whatever the value's shape.
fn printed_size(v: &Value, limit: usize) -> Option<usize> {
    let mut total = 0usize;
    walk(v, limit, &mut total, 0).then_some(total)
}

fn walk(v: &Value, limit: usize, total: &mut usize, depth: usize) -> bool {
    let spend = |total: &mut usize, n: usize| match total.checked_add(n) {
        Some(t) if t <= limit => {
            *total = t;
            true
        }
        _ => false,
    };
    match v.kind() {
        ValueKind::String => spend(total, v.as_str().map_or(0, str::len) + 2),
        ValueKind::Bytes => spend(total, v.as_bytes().map_or(0, |b| b.len() * 4) + 3),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable if v.len().is_some() => {
            if depth >= MAX_WALK_DEPTH {
                return false;
            }
            let Ok(items) = v.try_iter() else { return spend(total, 2) };
            let is_map = v.kind() == ValueKind::Map;
            for item in items {
                if !spend(total, ITEM) || !walk(&item, limit, total, depth + 1) {
                    return false;
                }
                if is_map {
                    let value = v.get_item(&item).unwrap_or_default();
                    if !walk(&value, limit, total, depth + 1) {
                        return false;
                    }
                }
            }
            spend(total, 2)
        }
        // Numbers, booleans, none, undefined, functions, one-shot iterators
        // (walking one would consume it) and other objects print short.
        _ => spend(total, 24),
    }
}

/// What the budget has left.
fn left() -> usize {
    LEFT.get()
}

/// The memory a value holds itself (not what it shares with others).
fn shallow_size(v: &Value) -> usize {
    match v.kind() {
        ValueKind::String => v.as_str().map_or(0, str::len),
        ValueKind::Bytes => v.as_bytes().map_or(0, <[u8]>::len),
        ValueKind::Map => v.len().unwrap_or(0).saturating_mul(2 * SLOT),
        ValueKind::Seq | ValueKind::Iterable => v.len().unwrap_or(0).saturating_mul(SLOT),
        _ => 0,
    }
}

fn is_seq(v: &Value) -> bool {
    matches!(v.kind(), ValueKind::Seq | ValueKind::Iterable)
}

/// Plain minijinja expressions the checked operators hand the operation to once
/// the size is known to fit, so numbers, lists and errors behave exactly as in
/// an unchecked template.
struct Ops {
    add: Expression<'static, 'static>,
    mul: Expression<'static, 'static>,
    slice: Expression<'static, 'static>,
}

fn ops() -> Result<&'static Ops, Error> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    static OPS: OnceLock<Result<Ops, String>> = OnceLock::new();
    let env = ENV.get_or_init(Environment::new);
    OPS.get_or_init(|| {
        let add = env.compile_expression("a + b").map_err(|e| e.to_string())?;
        let mul = env.compile_expression("a * b").map_err(|e| e.to_string())?;
        let slice = env.compile_expression("v[a:b:c]").map_err(|e| e.to_string())?;
        Ok(Ops { add, mul, slice })
    })
    .as_ref()
    .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.clone()))
}

fn checked_add(a: Value, b: Value) -> Result<Value, Error> {
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        charge(x.len().checked_add(y.len()), "string concatenation")?;
        return Ok(Value::from([x, y].concat()));
    }
    if is_seq(&a) && is_seq(&b) {
        if let (Some(x), Some(y)) = (a.len(), b.len()) {
            charge(x.checked_add(y).and_then(|n| n.checked_mul(SLOT)), "list concatenation")?;
        }
    }
    ops()?.add.eval(minijinja::context! { a => a, b => b })
}

fn checked_mul(a: Value, b: Value) -> Result<Value, Error> {
    let (seq, n) = if a.is_number() { (&b, &a) } else { (&a, &b) };
    if let Some(count) = n.as_usize() {
        if let Some(s) = seq.as_str() {
            charge(s.len().checked_mul(count), "string repetition")?;
        } else if is_seq(seq) {
            if let Some(len) = seq.len() {
                charge(len.checked_mul(count).and_then(|n| n.checked_mul(SLOT)), "list repetition")?;
            }
        }
    }
    ops()?.mul.eval(minijinja::context! { a => a, b => b })
}

fn checked_concat(a: Value, b: Value) -> Result<Value, Error> {
    let limit = left();
    let size = printed_size(&a, limit).and_then(|x| printed_size(&b, limit).and_then(|y| x.checked_add(y)));
    charge(size, "string concatenation (`~`)")?;
    Ok(Value::from(format!("{a}{b}")))
}

/// What a `for` loop iterates, as Python allows it: `None`, numbers and booleans are not
/// iterable (jinja2 fails, "'NoneType' object is not iterable"); minijinja would loop zero
/// times. Undefined still loops zero times, as jinja2's `Undefined` does.
fn checked_iterable(v: Value) -> Result<Value, Error> {
    let kind = match v.kind() {
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number => "number",
        _ => return Ok(v),
    };
    Err(Error::new(ErrorKind::InvalidOperation, format!("'{kind}' object is not iterable")))
}

/// `v[start:stop:step]`. minijinja 2.24 panics on a negative step over an
/// empty string or list (`''[::-1]`, index out of bounds) and can underflow
/// when `stop` lies past `start`, so negative steps are done here, with
/// Python's rules; positive ones are handed to minijinja.
fn checked_slice(v: Value, start: Value, stop: Value, step: Value) -> Result<Value, Error> {
    let step_n = if step.is_none() || step.is_undefined() { 1 } else { i64::try_from(step.clone())? };
    if step_n >= 0 {
        return ops()?.slice.eval(minijinja::context! { v => v, a => start, b => stop, c => step });
    }
    let bound = |x: &Value| -> Result<Option<i64>, Error> {
        if x.is_none() || x.is_undefined() {
            Ok(None)
        } else {
            i64::try_from(x.clone()).map(Some)
        }
    };
    let (start, stop) = (bound(&start)?, bound(&stop)?);
    let indices = |len: usize| -> Vec<usize> {
        let len = len as i64;
        let clamp = |x: i64| {
            let x = if x < 0 { x + len } else { x };
            x.clamp(-1, len - 1)
        };
        let first = start.map_or(len - 1, clamp);
        let last = stop.map_or(-1, clamp);
        let step = step_n.unsigned_abs().min(len.unsigned_abs() + 1) as i64;
        let mut out = Vec::new();
        let mut i = first;
        while i > last {
            out.push(i as usize);
            i -= step;
        }
        out
    };
    if let Some(s) = v.as_str() {
        charge(Some(s.len()), "a slice")?;
        let chars: Vec<char> = s.chars().collect();
        return Ok(Value::from(indices(chars.len()).into_iter().map(|i| chars[i]).collect::<String>()));
    }
    if let Some(b) = v.as_bytes() {
        charge(Some(b.len()), "a slice")?;
        return Ok(Value::from_bytes(indices(b.len()).into_iter().map(|i| b[i]).collect()));
    }
    if v.is_none() || v.is_undefined() {
        return Ok(Value::from(Vec::<Value>::new()));
    }
    if is_seq(&v) {
        charge(v.len().unwrap_or(0).checked_mul(SLOT), "a slice")?;
        let items: Vec<Value> = v.try_iter()?.collect();
        return Ok(Value::from(indices(items.len()).into_iter().map(|i| items[i].clone()).collect::<Vec<_>>()));
    }
    Err(Error::new(ErrorKind::InvalidOperation, format!("value of type {} cannot be sliced", v.kind())))
}

/// The filters and methods whose output is not bounded by the size of their
/// arguments but by a number among them.
const SIZED: &[&str] = &["indent", "batch", "slice", "center", "ljust", "rjust", "zfill", "wordwrap", "truncate"];

/// Called before a filter or method: `args` are its arguments (the value first)
/// followed by its name. Returns the arguments as a list, which the rewritten
/// bytecode unpacks back onto the stack (`UnpackList` pushes a list's items in
/// reverse, so the list is reversed).
fn precheck(mut args: Vec<Value>) -> Result<Value, Error> {
    let name = args.pop().unwrap_or_default();
    let name = name.as_str().unwrap_or_default();
    let budget = left();
    let mut total = 0usize;
    for a in &args {
        let size = printed_size(a, budget).and_then(|s| total.checked_add(s));
        match size {
            Some(s) if s <= budget => total = s,
            _ => return Err(over(&format!("the arguments of `{name}`"))),
        }
    }
    let text = |i: usize| args.get(i).and_then(Value::as_str).unwrap_or_default();
    match name {
        "replace" => {
            let (s, from, to) = (text(0), text(1), text(2));
            let hits = if from.is_empty() { s.chars().count() + 1 } else { s.matches(from).count() };
            fits(hits.checked_mul(to.len()).and_then(|n| n.checked_add(s.len())), "`replace`")?;
        }
        "indent" => {
            let lines = text(0).matches('\n').count() + 1;
            let width = args.get(1).and_then(Value::as_usize).unwrap_or(0);
            fits(width.checked_mul(lines).and_then(|n| n.checked_add(text(0).len())), "`indent`")?;
        }
        "format" => {
            // Widths and precisions in the format string (`%9999999s`, `{:>9999999}`).
            for digits in text(0).split(|c: char| !c.is_ascii_digit()).filter(|d| !d.is_empty()) {
                fits(digits.parse::<usize>().ok(), "a width in `format`")?;
            }
        }
        _ if SIZED.contains(&name) => {
            for n in args.iter().skip(1).filter(|a| a.is_number()) {
                let bytes = match n.as_usize() {
                    Some(n) => n.checked_mul(SLOT),
                    None if n.as_i64().is_some_and(|x| x < 0) => Some(0),
                    None => None,
                };
                fits(bytes, &format!("the size given to `{name}`"))?;
            }
        }
        _ => {}
    }
    args.reverse();
    Ok(Value::from(args))
}

/// Called after a filter or method: charges what its result holds.
fn charge_result(v: Value) -> Result<Value, Error> {
    charge(Some(shallow_size(&v)), "a filter's or method's result")?;
    Ok(v)
}

/// Installs the checked functions and the charging formatter in `env`.
pub(super) fn install(env: &mut Environment<'static>) {
    env.add_function(ADD, checked_add);
    env.add_function(MUL, checked_mul);
    env.add_function(CONCAT, checked_concat);
    env.add_function(PRECHECK, |args: Rest<Value>| precheck(args.0));
    env.add_function(CHARGE, charge_result);
    env.add_function(SLICE, checked_slice);
    env.add_function(ITER, checked_iterable);
    env.set_formatter(|out: &mut Output, state: &State, value: &Value| {
        charge(printed_size(value, left()), "the template's output")?;
        // Printed as Python prints them (jinja2's `str()`): `None`, and lists and dicts as
        // their `repr`.
        match value.kind() {
            ValueKind::None => out.write_str("None").map_err(Error::from),
            ValueKind::Seq | ValueKind::Map if value.len().is_some() => {
                let json = serde_json::to_value(value)
                    .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("printing a value: {e}")))?;
                out.write_str(&super::pyjson::python_str(&json)).map_err(Error::from)
            }
            _ => minijinja::escape_formatter(out, state, value),
        }
    });
}

/// Compiles `source` and rewrites its bytecode to call the checks.
pub(super) fn compile<'s>(name: &'s str, source: &'s str) -> Result<CompiledTemplate<'s>, Error> {
    // Hugging Face renders with `trim_blocks` and `lstrip_blocks` (a block tag's line break and
    // the indentation before it vanish); templates are written for that.
    let config = TemplateConfig {
        syntax_config: Default::default(),
        ws_config: WhitespaceConfig { keep_trailing_newline: false, lstrip_blocks: true, trim_blocks: true },
        default_auto_escape: Arc::new(|_: &str| AutoEscape::None),
    };
    let mut compiled = CompiledTemplate::new(name, source, &config)?;
    compiled.instructions = rewrite(&compiled.instructions);
    for block in compiled.blocks.values_mut() {
        *block = rewrite(block);
    }
    Ok(compiled)
}

/// The instructions that replace `instr`.
fn expand<'s>(instr: &Instruction<'s>) -> Vec<Instruction<'s>> {
    use Instruction as I;
    match instr {
        I::Add => vec![I::CallFunction(ADD, Some(2))],
        I::Mul => vec![I::CallFunction(MUL, Some(2))],
        I::StringConcat => vec![I::CallFunction(CONCAT, Some(2))],
        I::Slice => vec![I::CallFunction(SLICE, Some(4))],
        I::PushLoop(_) => vec![I::CallFunction(ITER, Some(1)), instr.clone()],
        I::EmitRaw(text) => vec![I::LoadConst(Value::from_safe_string((*text).to_string())), I::Emit],
        // The argument count includes the value (or the method's receiver).
        I::ApplyFilter(name, Some(n), _) | I::CallMethod(name, Some(n)) if *n < u16::MAX => vec![
            I::LoadConst(Value::from(*name)),
            I::CallFunction(PRECHECK, Some(n + 1)),
            I::UnpackList(usize::from(*n)),
            instr.clone(),
            I::CallFunction(CHARGE, Some(1)),
        ],
        other => vec![other.clone()],
    }
}

/// `old` with every instruction expanded and every jump retargeted.
fn rewrite<'s>(old: &Instructions<'s>) -> Instructions<'s> {
    let n = old.len() as u32;
    let mut expanded = Vec::with_capacity(old.len());
    let mut start = Vec::with_capacity(old.len() + 1);
    let mut pos = 0u32;
    for i in 0..n {
        start.push(pos);
        let seq = old.get(i).map(expand).unwrap_or_default();
        pos += seq.len() as u32;
        expanded.push(seq);
    }
    start.push(pos);
    let to = |t: u32| start.get(t as usize).copied().unwrap_or(pos);
    let mut new = Instructions::new(old.name(), old.source());
    for (i, seq) in expanded.into_iter().enumerate() {
        let span = old.get_span(i as u32);
        let line = old.get_line(i as u32);
        for mut instr in seq {
            match &mut instr {
                Instruction::Jump(t)
                | Instruction::JumpIfFalse(t)
                | Instruction::JumpIfFalseOrPop(t)
                | Instruction::JumpIfTrueOrPop(t)
                | Instruction::Iterate(t)
                | Instruction::BuildMacro(_, t, _) => *t = to(*t),
                _ => {}
            }
            match (span, line) {
                (Some(span), _) => new.add_with_span(instr, span),
                (None, Some(line)) => new.add_with_line(instr, u16::try_from(line).unwrap_or(u16::MAX)),
                (None, None) => new.add(instr),
            };
        }
    }
    new
}
