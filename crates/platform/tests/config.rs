//! `seed.toml` parsing and validation: the shipped example loads; each kind of mistake is
//! rejected with an error naming its line.

use std::path::Path;

use platform::{Config, ConfigError, Location};

const BASE: &str = r#"
[[region]]
name = "cn"
store = "cn.sqlite"

[[region]]
name = "global"
store = "global.sqlite"

[[edition]]
name = "doubao"
model = "gemma3-270m"
regions = ["cn"]

[[edition]]
name = "cici"
model = "smollm2-135m-instruct"
regions = ["global"]
"#;

fn err(extra: &str) -> ConfigError {
    Config::parse(&format!("{BASE}{extra}")).expect_err("config should be rejected")
}

/// Line (1-based) of the first occurrence of `needle` in BASE + extra.
fn line_of(extra: &str, needle: &str) -> usize {
    let text = format!("{BASE}{extra}");
    let at = text.find(needle).expect("needle present");
    text[..at].matches('\n').count() + 1
}

#[test]
fn shipped_example_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed.toml");
    let config = Config::load(&path).expect("examples/seed.toml is valid");
    let doubao = config.edition("doubao").expect("doubao");
    assert_eq!(doubao.model, "gemma3-270m");
    assert_eq!(doubao.regions, ["cn"]);
    assert!(doubao.system.as_deref().is_some_and(|s| s.contains("豆包")));
    assert_eq!(doubao.chat_template.as_deref(), Some("gemma"), "Gemma 3 270M's file has no chat template");
    assert_eq!((doubao.face.display_name.as_deref(), doubao.language.as_deref()), (Some("豆包"), Some("zh")));
    assert_eq!((doubao.face.suggestions.len(), doubao.face.accent.as_deref()), (3, Some("#1664ff")));
    let cici = config.edition("cici").expect("cici");
    assert_eq!(cici.model, "smollm2-135m-instruct");
    assert_eq!(cici.regions, ["global"]);
    let Location::Sqlite(cn) = &config.region("cn").expect("cn").store else { panic!("cn is a file") };
    assert!(cn.ends_with("seed-cn.sqlite"));
    assert!(cn.is_absolute() || path.is_relative());
    let acme = config.tenant("acme-cn").expect("tenant");
    assert!(config.may_use(acme, "doubao"));
    assert!(!config.may_use(acme, "cici"));
    assert_eq!(acme.quotas.requests_per_minute, Some(60));
}

#[test]
fn valid_tenant_parses_with_defaults() {
    let c = Config::parse(&format!("{BASE}\n[[tenant]]\nid = \"t\"\nregion = \"cn\"\neditions = [\"doubao\"]\n"))
        .expect("valid");
    let t = c.tenant("t").expect("t");
    assert_eq!(t.weight, 1);
    assert_eq!(t.quotas, Default::default());
    assert_eq!(c.region("global").expect("g").store, Location::Sqlite("global.sqlite".into()));
}

#[test]
fn duplicate_region_names_its_line() {
    let extra = "\n[[region]]\nname = \"cn\"\nstore = \"other.sqlite\"\n";
    let e = err(extra);
    assert!(e.to_string().contains("duplicate region `cn`"), "{e}");
    assert_eq!(e.line(), BASE.matches('\n').count() + 3, "{e}");
}

#[test]
fn duplicate_edition() {
    let extra = "\n[[edition]]\nname = \"cici\"\nmodel = \"x\"\nregions = [\"global\"]\n";
    let e = err(extra);
    assert!(e.to_string().contains("duplicate edition `cici`"), "{e}");
    assert_eq!(e.line(), BASE.matches('\n').count() + 3);
}

#[test]
fn postgres_store_takes_its_password_from_the_environment() {
    let c = Config::parse(&format!(
        "{BASE}\n[[region]]\nname = \"eu\"\nstore = \"postgres://seed@db.eu/seed\"\nstore_password_env = \"EU_DB\"\n"
    ))
    .expect("valid");
    let expected = Location::Postgres { url: "postgres://seed@db.eu/seed".into(), password_env: "EU_DB".into() };
    assert_eq!(c.region("eu").expect("eu").store, expected);
    let e = err("\n[[region]]\nname = \"eu\"\nstore = \"postgres://seed:secret@db.eu/seed\"\n");
    assert!(e.to_string().contains("must not hold a password") && !e.to_string().contains("secret@"), "{e}");
    assert_eq!(e.line(), BASE.matches('\n').count() + 4, "{e}");
    let e = err("\n[[region]]\nname = \"eu\"\nstore_password_env = \"EU_DB\"\n");
    assert!(e.to_string().contains("only to a postgres:// store"), "{e}");
    let e = err("\n[[region]]\nname = \"eu\"\nstore = \"postgres://seed@db/seed?connect_timeout=soon\"\n");
    assert!(e.to_string().contains("not a valid PostgreSQL URL"), "{e}");
}

#[test]
fn a_region_names_where_its_models_come_from() {
    let c = Config::parse(&format!(
        "{BASE}\n[[region]]\nname = \"eu\"\nstore = \"eu.sqlite\"\nmodel_hub = \"https://mirror.example\"\n\
         \n[[region]]\nname = \"cn2\"\nstore = \"cn2.sqlite\"\nmodel_hub = \"modelscope\"\n"
    ))
    .expect("valid");
    assert_eq!(c.region("eu").expect("eu").model_hub.as_deref(), Some("https://mirror.example"));
    assert_eq!(c.region("cn2").expect("cn2").model_hub.as_deref(), Some("modelscope"));
    assert_eq!(c.region("cn").expect("cn").model_hub, None);
    let extra = "\n[[region]]\nname = \"eu\"\nmodel_hub = \"ftp://mirror\"\n";
    let e = err(extra);
    assert!(e.to_string().contains("model_hub `ftp://mirror` is not"), "{e}");
    assert_eq!(e.line(), line_of(extra, "model_hub"), "{e}");
}

#[test]
fn the_old_keys_file_entry_is_refused_with_where_keys_live_now() {
    let e = Config::parse(&format!("keys = \"seed-keys.json\"\n{BASE}")).expect_err("keys");
    assert!(e.to_string().contains("kept in each region's store") && e.line() == 1, "{e}");
}

#[test]
fn shared_store_rejected() {
    let e = err("\n[[region]]\nname = \"eu\"\nstore = \"cn.sqlite\"\n");
    assert!(e.to_string().contains("shares its store"), "{e}");
}

#[test]
fn edition_in_unknown_region() {
    let extra = "\n[[edition]]\nname = \"x\"\nmodel = \"m\"\nregions = [\"mars\"]\n";
    let e = err(extra);
    assert!(e.to_string().contains("unknown region `mars`"), "{e}");
    assert_eq!(e.line(), line_of(extra, "[\"mars\"]"));
}

#[test]
fn tenant_unknown_region_and_edition() {
    let extra = "\n[[tenant]]\nid = \"t\"\nregion = \"eu\"\neditions = [\"cici\"]\n";
    let e = err(extra);
    assert!(e.to_string().contains("tenant `t`: unknown region `eu`"), "{e}");
    assert_eq!(e.line(), line_of(extra, "region = \"eu\""));

    let extra = "\n[[tenant]]\nid = \"t\"\nregion = \"cn\"\neditions = [\"nope\"]\n";
    let e = err(extra);
    assert!(e.to_string().contains("unknown edition `nope`"), "{e}");
    assert_eq!(e.line(), line_of(extra, "[\"nope\"]"));
}

#[test]
fn tenant_allowed_edition_outside_its_region() {
    let extra = "\n[[tenant]]\nid = \"t\"\nregion = \"cn\"\neditions = [\"doubao\", \"cici\"]\n";
    let e = err(extra);
    assert!(e.to_string().contains("not served in `cn`"), "{e}");
}

#[test]
fn impossible_quotas() {
    let extra =
        "\n[[tenant]]\nid = \"t\"\nregion = \"cn\"\neditions = [\"doubao\"]\nquotas = { requests_per_minute = 0 }\n";
    let e = err(extra);
    assert!(e.to_string().contains("requests_per_minute = 0"), "{e}");
    assert_eq!(e.line(), line_of(extra, "quotas"));

    let extra = "\n[[tenant]]\nid = \"t\"\nregion = \"cn\"\neditions = [\"doubao\"]\nquotas = { tokens_per_minute = 100, tokens_per_month = 10 }\n";
    assert!(err(extra).to_string().contains("exceeds tokens_per_month"));

    let extra =
        "\n[[tenant]]\nid = \"t\"\nregion = \"cn\"\neditions = [\"doubao\"]\nquotas = { requests_per_minute = -1 }\n";
    assert!(matches!(err(extra), ConfigError::Syntax { .. }));
}

#[test]
fn bad_prices_sampling_and_names() {
    let e = err("\n[[edition]]\nname = \"x\"\nmodel = \"m\"\nregions = [\"cn\"]\nprices = { input = -1.0 }\n");
    assert!(e.to_string().contains("non-negative"), "{e}");
    let e = err("\n[[edition]]\nname = \"x\"\nmodel = \"m\"\nregions = [\"cn\"]\nsampling = { temperature = 9.0 }\n");
    assert!(e.to_string().contains("sampling out of range"), "{e}");
    let e = err("\n[[edition]]\nname = \"a b\"\nmodel = \"m\"\nregions = [\"cn\"]\n");
    assert!(e.to_string().contains("must be 1-64"), "{e}");
    let extra = "\n[[edition]]\nname = \"x\"\nmodel = \"m\"\nregions = [\"cn\"]\nchat_template = \" \"\n";
    let e = err(extra);
    assert!(e.to_string().contains("empty chat_template"), "{e}");
    assert_eq!(e.line(), line_of(extra, "chat_template"));
}

#[test]
fn unknown_field_and_syntax_name_the_line() {
    let extra = "\n[[tenant]]\nid = \"t\"\nregoin = \"cn\"\neditions = [\"doubao\"]\n";
    let e = err(extra);
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
    assert!(e.to_string().contains("regoin"), "{e}");
    assert!(e.line() > 0, "{e}");

    let e = Config::parse("[[region]]\nname = \n").expect_err("syntax");
    assert_eq!(e.line(), 2, "{e}");
}

#[test]
fn an_editions_face_is_read_and_checked() {
    let face = r##"
[[edition]]
name = "face"
model = "m"
regions = ["cn"]
display_name = " Doubao "
greeting = "你好"
suggestions = ["写一首诗", "Explain Rust"]
accent = "#0AF"
"##;
    let config = Config::parse(&format!("{BASE}{face}")).expect("parses");
    let f = &config.edition("face").expect("edition").face;
    assert_eq!(f.display_name.as_deref(), Some("Doubao"), "trimmed");
    assert_eq!((f.greeting.as_deref(), f.accent.as_deref()), (Some("你好"), Some("#00aaff")), "#rgb widened");
    assert_eq!(f.suggestions, ["写一首诗", "Explain Rust"]);
    assert_eq!(config.edition("cici").expect("edition").face, platform::config::Face::default());

    for (bad, needle, says) in [
        ("accent = \"blue\"", "accent", "`accent` must be a colour"),
        ("accent = \"#12345\"", "accent", "`accent` must be a colour"),
        ("display_name = \"  \"", "display_name", "`display_name` must be 1 to 64"),
        ("suggestions = [\"a\", \"\"]", "suggestions", "`suggestions` must be 1 to 200"),
        ("suggestions = [\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\"]", "suggestions", "at most 6"),
    ] {
        let extra = format!("[[edition]]\nname = \"face\"\nmodel = \"m\"\nregions = [\"cn\"]\n{bad}\n");
        let e = err(&extra);
        assert!(e.to_string().contains(says) && e.to_string().contains("edition `face`"), "{bad}: {e}");
        assert_eq!(e.line(), line_of(&extra, &format!("{needle} =")), "{bad}: {e}");
    }
}
