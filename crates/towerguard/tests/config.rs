//! The configuration: the example file, environment overrides, every mistake at once,
//! unknown keys, secrets, the built-in configurations.

use std::collections::HashMap;
use std::time::Duration;

use tower::ServiceExt;
use towerguard::config::{Config, ConfigErrors, StrategyName};
use towerguard::llm::{ErrorKind, LlmRequest, Message};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../towerguard.toml");

fn no_env(_: &str) -> Option<String> {
    None
}

fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn fields(errors: &ConfigErrors) -> Vec<String> {
    errors.iter().map(|e| e.field().to_owned()).collect()
}

fn ask(model: &str, tenant: &str) -> LlmRequest {
    LlmRequest::new(model, vec![Message::user("Hello")])
        .with_max_tokens(64)
        .with_client_key(tenant)
}

#[tokio::test(start_paused = true)]
async fn the_example_file_loads_validates_and_answers() {
    let config = Config::load_with(EXAMPLE, no_env).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = config.providers.0.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["primary", "backup", "last-resort"],
        "file order kept"
    );
    assert_eq!(config.tenants.len(), 2);
    assert!(config.admin_token.is_none(), "its variable is not set");
    let (pipeline, handle) = config.pipeline().unwrap();
    let mut served = 0;
    for _ in 0..20 {
        if pipeline.clone().oneshot(ask("fast", "acme")).await.is_ok() {
            served += 1;
        }
    }
    assert!(served >= 18, "served {served} of 20");
    let stats = handle.stats().await;
    assert_eq!(stats.ledger.total.requests, served);
    assert!(
        stats
            .ledger
            .clients
            .iter()
            .any(|(c, _)| c.as_ref() == "acme")
    );
    let providers: Vec<String> = handle.providers().iter().map(|p| p.to_string()).collect();
    assert_eq!(providers, ["primary", "backup", "last-resort"]);
}

#[tokio::test(start_paused = true)]
async fn the_embedded_default_is_valid_and_shows_its_faults() {
    let config = Config::embedded_default();
    config.validate().unwrap();
    assert_eq!(config.providers.0.len(), 3);
    let (pipeline, handle) = config.pipeline().unwrap();
    let mut ok = 0;
    for i in 0..40 {
        let tenant = format!("tenant-{}", i % 4);
        if pipeline
            .clone()
            .oneshot(ask("gpt-4o-mini", &tenant))
            .await
            .is_ok()
        {
            ok += 1;
        }
    }
    assert!(ok >= 35, "served {ok} of 40");
    let health = handle.health();
    assert!(
        health[0].breaker.failures > 0,
        "the flaky primary failed: {health:?}"
    );
    assert!(
        health[1].last_error.is_some(),
        "the second is overloaded: {health:?}"
    );
    let fallback = handle.stats().await.fallback.unwrap();
    assert!(fallback.fallbacks > 0, "{fallback:?}");
}

#[test]
fn the_environment_overrides_the_file() {
    let text = r#"
        [server]
        port = 9000
        admin_token_env = "ADMIN"

        [budgets]
        daily_usd = 1.0
        monthly_usd = 10.0
        max_per_request_usd = 0.1
        alert_threshold = 0.5

        [fallback]
        strategy = "priority"

        [providers.primary]
        kind = "simulated"
        timeout = "10s"
        retry.max_retries = 1
        rate_limit = { rpm = 10, tpm = 1000 }

        [providers.openai]
        kind = "openai"

        [providers.anthropic]
        kind = "anthropic"

        [providers.deepseek]
        kind = "openai-compatible"

        [providers.xai]
        kind = "openai-compatible"

        [providers.ollama]
        kind = "openai-compatible"

        [providers.my-vllm]
        kind = "openai-compatible"
        base_url = "http://127.0.0.1:8000/v1"
    "#;
    let env = env_of(&[
        ("OPENAI_API_KEY", "sk-openai"),
        ("ANTHROPIC_API_KEY", "sk-ant"),
        ("DEEPSEEK_API_KEY", "sk-deepseek"),
        ("GROK_API_KEY", "xai-grok"),
        ("OLLAMA_HOST", "gpu-box:11434"),
        ("LLM_DAILY_COST_LIMIT", "12.5"),
        ("LLM_MONTHLY_COST_LIMIT", "$300"),
        ("LLM_MAX_COST_PER_REQUEST", "0.75"),
        ("LLM_BUDGET_ALERT_THRESHOLD", "90%"),
        ("LLM_FALLBACK_STRATEGY", "round_robin"),
        ("PRIMARY_RATE_LIMIT_RPM", "120"),
        ("PRIMARY_RATE_LIMIT_TPM", "50000"),
        ("PRIMARY_TIMEOUT", "45s"),
        ("PRIMARY_MAX_RETRIES", "4"),
        ("MY_VLLM_TIMEOUT", "7"),
        ("TOWERGUARD_PORT", "8181"),
        ("ADMIN", "admin-secret"),
    ]);
    let c = Config::from_toml_str(text, &env).unwrap_or_else(|e| panic!("{e}"));
    let key = |name: &str| {
        c.providers.0[name]
            .api_key
            .as_ref()
            .map(|k| k.expose().to_owned())
    };
    assert_eq!(key("openai").as_deref(), Some("sk-openai"));
    assert_eq!(key("anthropic").as_deref(), Some("sk-ant"));
    assert_eq!(key("deepseek").as_deref(), Some("sk-deepseek"));
    assert_eq!(key("xai").as_deref(), Some("xai-grok"));
    assert_eq!(
        c.providers.0["ollama"].base_url.as_deref(),
        Some("http://gpu-box:11434/v1")
    );
    assert_eq!(c.budgets.daily_usd, Some(12.5));
    assert_eq!(c.budgets.monthly_usd, Some(300.0));
    assert_eq!(c.budgets.max_per_request_usd, Some(0.75));
    assert_eq!(c.budgets.alert_threshold, Some(0.9));
    assert_eq!(c.fallback.strategy, StrategyName::RoundRobin);
    let primary = &c.providers.0["primary"];
    assert_eq!(primary.rate_limit.rpm, Some(120));
    assert_eq!(primary.rate_limit.tpm, Some(50_000));
    assert_eq!(primary.timeout, Duration::from_secs(45));
    assert_eq!(primary.retry.max_retries, 4);
    assert_eq!(c.providers.0["my-vllm"].timeout, Duration::from_secs(7));
    assert_eq!(c.server.port, 8181);
    assert_eq!(
        c.admin_token.as_ref().map(|t| t.expose()),
        Some("admin-secret")
    );

    // XAI_API_KEY wins over GROK_API_KEY
    let env = env_of(&[
        ("XAI_API_KEY", "xai-first"),
        ("GROK_API_KEY", "grok-second"),
    ]);
    let c = Config::from_toml_str("[providers.xai]\nkind = \"openai-compatible\"", &env).unwrap();
    assert_eq!(
        c.providers.0["xai"].api_key.as_ref().map(|k| k.expose()),
        Some("xai-first")
    );
}

#[test]
fn a_bad_environment_value_names_the_variable_and_the_field() {
    let text = "[providers.primary]\nkind = \"simulated\"";
    let cases = [
        ("LLM_DAILY_COST_LIMIT", "lots", "budgets.daily_usd"),
        ("LLM_MONTHLY_COST_LIMIT", "-5", "budgets.monthly_usd"),
        (
            "LLM_MAX_COST_PER_REQUEST",
            "x",
            "budgets.max_per_request_usd",
        ),
        (
            "LLM_BUDGET_ALERT_THRESHOLD",
            "150%",
            "budgets.alert_threshold",
        ),
        ("LLM_FALLBACK_STRATEGY", "random", "fallback.strategy"),
        (
            "PRIMARY_RATE_LIMIT_RPM",
            "-1",
            "providers.primary.rate_limit.rpm",
        ),
        (
            "PRIMARY_RATE_LIMIT_TPM",
            "0",
            "providers.primary.rate_limit.tpm",
        ),
        ("PRIMARY_TIMEOUT", "soon", "providers.primary.timeout"),
        (
            "PRIMARY_MAX_RETRIES",
            "50",
            "providers.primary.retry.max_retries",
        ),
        ("TOWERGUARD_PORT", "99999", "server.port"),
    ];
    for (var, value, field) in cases {
        let errors = Config::from_toml_str(text, env_of(&[(var, value)])).unwrap_err();
        assert_eq!(fields(&errors), [field], "{var}={value}: {errors}");
        let shown = errors.to_string();
        assert!(shown.contains(field), "{shown}");
        assert!(shown.contains(var), "{shown}");
        assert_eq!(errors.iter().next().unwrap().env_var(), Some(var));
    }
}

#[test]
fn every_mistake_is_reported_at_once_with_its_field_path() {
    let text = r#"
        [server]
        bind = "not an address"
        max_body_bytes = 0
        keys_required = true

        [fallback]
        order = ["primary", "ghost", "primary"]

        [budgets]
        daily_usd = 0
        alert_threshold = 1.5

        [limits]
        error_threshold = 0
        penalty = "1m"
        max_penalty = "10s"

        [providers.primary]
        kind = "simulated"
        base_url = "http://localhost"
        timeout = "0s"
        retry = { max_retries = 11, backoff = "1s", max_backoff = "100ms" }
        breaker = { consecutive_failures = 0, failure_rate = 2.0 }
        faults = { rates = { server = 0.8, gremlins = 0.1, overloaded = 0.5 } }

        [providers.openai]
        kind = "openai"

        [providers.compat]
        kind = "openai-compatible"

        [aliases]
        fast = { provider = "nobody", model = "x" }

        [prices."m"]
        input = -1
        output = 1

        [[tenants]]
        name = "acme"
        key_sha256 = "abc"
        budget.daily_usd = -3.0
    "#;
    let errors = Config::from_toml_str(text, no_env).unwrap_err();
    let expected = [
        "server.bind",
        "server.max_body_bytes",
        "providers.primary.base_url",
        "providers.primary.timeout",
        "providers.primary.retry.max_retries",
        "providers.primary.retry.max_backoff",
        "providers.primary.breaker.consecutive_failures",
        "providers.primary.breaker.failure_rate",
        "providers.primary.faults.rates.gremlins",
        "providers.primary.faults.rates",
        "providers.openai.api_key_env",
        "providers.compat.base_url",
        "fallback.order[1]",
        "fallback.order[2]",
        "budgets.daily_usd",
        "budgets.alert_threshold",
        "limits.error_threshold",
        "limits.max_penalty",
        "aliases.fast.provider",
        "prices.m.input",
        "tenants[0].key_sha256",
        "tenants[0].budget.daily_usd",
    ];
    assert_eq!(fields(&errors), expected, "{errors}");
    let shown = errors.to_string();
    assert!(shown.starts_with(&format!(
        "invalid configuration ({} errors)",
        expected.len()
    )));
    for field in expected {
        assert!(
            shown.contains(&format!("`{field}`")),
            "{field} missing from {shown}"
        );
    }
    assert!(shown.contains("OPENAI_API_KEY"), "{shown}");
}

#[test]
fn unknown_keys_are_errors_naming_them() {
    let cases = [
        ("[server]\nprot = 8080", "server", "prot"),
        ("[budgets]\ndaily = 5", "budgets", "daily"),
        ("[sever]\nport = 1", "", "sever"),
        (
            "[providers.a]\nkind = \"simulated\"\nretry.max_retriess = 3",
            "providers.a.retry",
            "max_retriess",
        ),
        (
            "[providers.a]\nkind = \"simulated\"\nfaults = { sed = 1 }",
            "providers.a.faults",
            "sed",
        ),
        (
            "[[tenants]]\nname = \"t\"\nkey_sha256 = \"x\"\nkey = \"plain\"",
            "tenants[0]",
            "key",
        ),
    ];
    for (text, field, key) in cases {
        let errors = Config::from_toml_str(text, no_env).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors}");
        let e = errors.iter().next().unwrap();
        let path = format!("{field}.{key}");
        assert_eq!(e.field(), path.trim_start_matches('.'), "for {text:?}");
        assert!(e.reason().contains(&format!("`{key}`")), "{e}");
    }
    // a wrong type and a bad duration name their field too
    let errors = Config::from_toml_str("[server]\nport = \"high\"", no_env).unwrap_err();
    assert_eq!(fields(&errors), ["server.port"]);
    let errors = Config::from_toml_str("[limits]\nwindow = \"a while\"", no_env).unwrap_err();
    assert_eq!(fields(&errors), ["limits.window"]);
    let errors = Config::from_toml_str("[providers.a]\nkind = \"magic\"", no_env).unwrap_err();
    assert_eq!(fields(&errors), ["providers.a.kind"]);
}

#[test]
fn every_unknown_key_and_wrong_type_is_reported_at_once() {
    let text = r#"
        [server]
        prot = 8080
        port = "high"

        [limits]
        window = "a while"

        [providers.a]
        kind = "magic"
        retry.max_retriess = 3

        [providers.b]
        kind = "simulated"
        timeout = 5

        [fallback]
        order = ["a", 7]

        [aliases]
        fast = { provider = "b" }

        [[tenants]]
        name = "t"
        key_sha256 = "x"
        key = "plain"

        [[tenants]]
        key_sha256 = "y"

        [[tenants]]
        name = "u"
        key_sha256 = "z"
        limits.rpm = "many"
    "#;
    let errors = Config::from_toml_str(text, no_env).unwrap_err();
    // in the file's order
    assert_eq!(
        fields(&errors),
        [
            "server.prot",
            "server.port",
            "limits.window",
            "providers.a.kind",
            "providers.a.retry.max_retriess",
            "providers.b.timeout",
            "fallback.order[1]",
            "aliases.fast",
            "tenants[0].key",
            "tenants[1]",
            "tenants[2].limits.rpm",
        ],
        "{errors}"
    );
    let shown = errors.to_string();
    assert!(shown.contains("missing field `model`"), "{shown}");
    assert!(shown.contains("missing field `name`"), "{shown}");
    // tenants written inline read the same; tenants that are not a list are one mistake
    let inline = r#"tenants = [{ name = "t", key_sha256 = "x", key = "plain" }]"#;
    let errors = Config::from_toml_str(inline, no_env).unwrap_err();
    assert_eq!(fields(&errors), ["tenants[0].key"], "{errors}");
    let errors =
        Config::from_toml_str("tenants = \"all\"\n[server]\nprot = 1", no_env).unwrap_err();
    assert_eq!(fields(&errors), ["tenants", "server.prot"], "{errors}");
    // a syntax error stops the reading: it is reported alone
    let errors =
        Config::from_toml_str("[server\nport = 1\n[limits]\nrpm = \"x\"", no_env).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    assert!(errors.to_string().contains("not valid TOML"), "{errors}");
}

#[test]
fn secrets_never_show() {
    let text = r#"
        [server]
        admin_token_env = "ADMIN_TOKEN"
        [providers.openai]
        kind = "openai"
        [providers.anthropic]
        kind = "anthropic"
        timeout = "0s"
    "#;
    let env = env_of(&[
        ("OPENAI_API_KEY", "sk-live-very-secret"),
        ("ANTHROPIC_API_KEY", "sk-ant-also-secret"),
        ("ADMIN_TOKEN", "hunter2-admin"),
    ]);
    let errors = Config::from_toml_str(text, &env).unwrap_err();
    let text_ok = text.replace("timeout = \"0s\"", "");
    let config = Config::from_toml_str(&text_ok, &env).unwrap();
    for shown in [
        format!("{config:?}"),
        format!("{config:#?}"),
        errors.to_string(),
        format!("{errors:?}"),
        format!("{:?}", config.pipeline().unwrap().1),
    ] {
        for secret in ["sk-live-very-secret", "sk-ant-also-secret", "hunter2-admin"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
    assert!(format!("{config:?}").contains("redacted"));
}

#[test]
fn keys_from_the_environment_make_a_configuration() {
    assert!(Config::from_env(no_env).is_none());
    let env = env_of(&[("DEEPSEEK_API_KEY", "sk-d"), ("ANTHROPIC_API_KEY", "sk-a")]);
    let config = Config::from_env(&env).unwrap().unwrap();
    let names: Vec<&str> = config.providers.0.keys().map(String::as_str).collect();
    assert_eq!(names, ["anthropic", "deepseek"]);
    assert_eq!(
        config.providers.0["anthropic"].model, None,
        "the first takes the request's model"
    );
    assert_eq!(
        config.providers.0["deepseek"].model.as_deref(),
        Some("deepseek-chat")
    );
    assert!(config.pipeline().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_configured_pipeline_applies_prices_aliases_and_budgets() {
    let text = r#"
        [budgets]
        max_per_request_usd = 0.01

        [providers.sim]
        kind = "simulated"

        [aliases]
        house = { provider = "sim", model = "house-model" }

        [prices."house-model"]
        input = 1.0
        output = 2.0
    "#;
    let config = Config::from_toml_str(text, no_env).unwrap();
    let (pipeline, handle) = config.pipeline().unwrap();
    let resp = pipeline.clone().oneshot(ask("house", "t")).await.unwrap();
    assert_eq!(resp.provider(), "sim");
    let rows = handle.stats().await.rows;
    assert_eq!(rows[0].model.as_ref(), "house-model");
    assert!(rows[0].spend.cost > 0, "priced by the override");
    // unpriced models are refused; a dear request is over the per-request budget
    let err = pipeline
        .clone()
        .oneshot(ask("mystery", "t"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration);
    let dear = LlmRequest::new("house", vec![Message::user("hi")]).with_max_tokens(100_000);
    let err = pipeline.oneshot(dear).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BudgetExceeded);
}

#[tokio::test(start_paused = true)]
async fn a_tenant_with_a_budget_of_its_own_spends_up_to_it() {
    let text = r#"
        [budgets]
        per_tenant_daily_usd = 0.000002

        [providers.sim]
        kind = "simulated"

        [prices."house-model"]
        input = 1.0
        output = 1.0

        [[tenants]]
        name = "big"
        key_sha256 = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        budget.daily_usd = 1.0
    "#;
    let config = Config::from_toml_str(text, no_env).unwrap();
    let (pipeline, _) = config.pipeline().unwrap();
    // 64 output tokens at $1 per million: $0.000064 worst case, over the default budget
    let err = pipeline
        .clone()
        .oneshot(ask("house-model", "small"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BudgetExceeded);
    for _ in 0..3 {
        let resp = pipeline.clone().oneshot(ask("house-model", "big")).await;
        assert!(resp.is_ok(), "{resp:?}");
    }
}
