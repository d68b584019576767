//! The deployment files agree with the code and with each other:
//!
//! - every service of `docker-compose.yml` has an image or a build and a health check, and
//!   waits for healthy dependencies;
//! - every variable the compose file sets for a service is one its binary reads (a typo
//!   would otherwise be ignored silently), and every setting without a default is set;
//! - a URL naming another service uses the port that service listens on;
//! - `scripts/cluster.sh` runs the same instances with the same variables, wired the same
//!   way;
//! - `docs/OPERATIONS.md` lists every setting as the code declares it and every metric the
//!   code records, and `deploy/grafana-dashboard.json` charts those metrics and no others.
//!
//! The settings are read from the `#[arg(.., env = "..")]` declarations in each binary's
//! `config.rs` (and `service-kit/src/config.rs`, which every service flattens in). Run with
//! `RC_UPDATE_DOCS=1` to rewrite the generated tables of `docs/OPERATIONS.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support sits in the workspace")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The service binaries: name, the files declaring their settings.
const BINARIES: [(&str, &[&str]); 6] = [
    (
        "auth-service",
        &["auth-service/src/config.rs", "service-kit/src/config.rs"],
    ),
    (
        "message-service",
        &["message-service/src/config.rs", "service-kit/src/config.rs"],
    ),
    (
        "matching-service",
        &[
            "matching-service/src/config.rs",
            "service-kit/src/config.rs",
        ],
    ),
    (
        "ws-manager",
        &["ws-manager/src/config.rs", "service-kit/src/config.rs"],
    ),
    (
        "ws-handler",
        &["ws-handler/src/config.rs", "service-kit/src/config.rs"],
    ),
    (
        "gateway",
        &["gateway/src/config.rs", "service-kit/src/config.rs"],
    ),
];

/// Variables the binaries read through libraries rather than their settings: the log
/// filter of `tracing-subscriber`.
const LIBRARY_VARIABLES: [&str; 1] = ["RUST_LOG"];

/// One `#[arg(.., env = "..")]` declaration.
#[derive(Debug, Clone)]
struct Setting {
    env: String,
    /// The default as an operator writes it, if any.
    default: Option<String>,
    /// Whether the binary refuses to start without it.
    required: bool,
    doc: String,
}

/// Splits the inside of `#[arg(...)]` at its top-level commas.
fn top_level_items(inner: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0i32;
    let mut in_string = false;
    let mut current = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => in_string = !in_string,
            '\\' if in_string => {
                current.push(c);
                if let Some(next) = chars.next() {
                    current.push(next);
                }
                continue;
            }
            '(' | '[' | '{' if !in_string => depth += 1,
            ')' | ']' | '}' if !in_string => depth -= 1,
            ',' if !in_string && depth == 0 => {
                items.push(current.trim().to_owned());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        items.push(current.trim().to_owned());
    }
    items
}

/// The value of a string constant `name` declared anywhere in the crates' sources.
fn string_constant(name: &str) -> Option<String> {
    let needle = format!("const {name}: &str = \"");
    for crate_dir in std::fs::read_dir(root()).unwrap() {
        let src = crate_dir.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        for file in rust_files(&src) {
            let text = std::fs::read_to_string(&file).unwrap();
            if let Some(start) = text.find(&needle) {
                let rest = &text[start + needle.len()..];
                return rest.split('"').next().map(str::to_owned);
            }
        }
    }
    None
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// A `default_value_t` expression as an operator would write the value.
fn render_default(expression: &str) -> String {
    let expression = expression.trim();
    let factors: Option<Vec<u64>> = expression
        .split('*')
        .map(|f| f.trim().replace('_', "").parse().ok())
        .collect();
    if let Some(factors) = factors {
        return factors.iter().product::<u64>().to_string();
    }
    if let Some((_, variant)) = expression.rsplit_once("::") {
        // clap's `ValueEnum` names variants in kebab case.
        let mut kebab = String::new();
        for (i, c) in variant.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                kebab.push('-');
            }
            kebab.push(c.to_ascii_lowercase());
        }
        return kebab;
    }
    if expression
        .chars()
        .all(|c| c.is_ascii_uppercase() || c == '_')
    {
        return string_constant(expression)
            .unwrap_or_else(|| panic!("no string constant {expression} in the sources"));
    }
    expression.to_owned()
}

/// Every setting declared in `relative`, in order.
fn settings_in(relative: &str) -> Vec<Setting> {
    let text = read(relative);
    let mut settings = Vec::new();
    let mut doc: Vec<String> = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if let Some(comment) = trimmed.strip_prefix("///") {
            doc.push(comment.trim().to_owned());
            continue;
        }
        if !trimmed.starts_with("#[arg(") {
            if !trimmed.starts_with("#[") {
                doc.clear();
            }
            continue;
        }
        let mut attribute = trimmed.to_owned();
        while !attribute.ends_with(")]") {
            attribute.push(' ');
            attribute.push_str(lines.next().expect("an attribute ends").trim());
        }
        // The field follows, possibly after other attributes.
        let field = lines
            .by_ref()
            .map(str::trim)
            .find(|l| !l.starts_with("#["))
            .expect("a field follows its attribute");
        let inner = &attribute["#[arg(".len()..attribute.len() - ")]".len()];
        let items: BTreeMap<String, String> = top_level_items(inner)
            .into_iter()
            .map(|item| match item.split_once('=') {
                Some((key, value)) => (key.trim().to_owned(), value.trim().to_owned()),
                None => (item.trim().to_owned(), String::new()),
            })
            .collect();
        let description = doc.join(" ");
        doc.clear();
        let Some(env) = items.get("env") else {
            continue;
        };
        let ty = field
            .split_once(':')
            .map(|(_, ty)| ty.trim().trim_end_matches(',').trim())
            .expect("a field has a type");
        let default = items
            .get("default_value")
            .map(
                |v| match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                    Some(literal) => literal.to_owned(),
                    None => render_default(v),
                },
            )
            .or_else(|| items.get("default_value_t").map(|e| render_default(e)));
        let required = default.is_none()
            && !ty.starts_with("Option<")
            && !ty.starts_with("Vec<")
            && ty != "bool";
        settings.push(Setting {
            env: env.trim_matches('"').to_owned(),
            default,
            required,
            doc: description,
        });
    }
    settings
}

/// The settings of one binary by variable name.
fn binary_settings(binary: &str) -> BTreeMap<String, Setting> {
    let (_, files) = BINARIES
        .iter()
        .find(|(name, _)| *name == binary)
        .unwrap_or_else(|| panic!("{binary} is not a service binary"));
    files
        .iter()
        .flat_map(|file| settings_in(file))
        .map(|s| (s.env.clone(), s))
        .collect()
}

/// `docker-compose.yml` with its merge keys applied.
fn compose() -> Value {
    let mut value: Value = serde_yaml_ng::from_str(&read("docker-compose.yml")).unwrap();
    value.apply_merge().unwrap();
    // Anchored mappings merged into mappings that are themselves merged need a second pass.
    value.apply_merge().unwrap();
    value
}

fn services(compose: &Value) -> BTreeMap<String, Value> {
    compose["services"]
        .as_mapping()
        .expect("a services mapping")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
        .collect()
}

/// The binary a compose service runs, if it is one of ours.
fn compose_binary(service: &Value) -> Option<String> {
    let first = service["command"].as_sequence()?.first()?.as_str()?;
    BINARIES
        .iter()
        .any(|(name, _)| *name == first)
        .then(|| first.to_owned())
}

fn compose_env(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        other => panic!("unexpected environment value {other:?}"),
                    };
                    (k.as_str().unwrap().to_owned(), value)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The port of a `host:port` listen address or of an `http://host:port/...` URL.
fn host_and_port(value: &str) -> Option<(String, u16)> {
    let rest = value.strip_prefix("http://").unwrap_or(value);
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

/// The port a service's binary listens on, from its `*_LISTEN` variable.
fn listen_port(env: &BTreeMap<String, String>) -> u16 {
    let (name, value) = env
        .iter()
        .find(|(name, _)| name.ends_with("_LISTEN") && !name.contains("OPERATOR"))
        .expect("a service sets its listen address");
    host_and_port(value)
        .unwrap_or_else(|| panic!("{name}={value} is not host:port"))
        .1
}

#[test]
fn every_compose_service_has_an_image_a_health_check_and_healthy_dependencies() {
    let compose = compose();
    let services = services(&compose);
    assert!(
        services.len() >= 12,
        "the whole topology: {:?}",
        services.keys()
    );
    let declared_volumes: BTreeSet<String> = compose["volumes"]
        .as_mapping()
        .map(|m| m.keys().map(|k| k.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    for (name, service) in &services {
        assert!(
            service.get("image").is_some() || service.get("build").is_some(),
            "{name} has neither an image nor a build"
        );
        let test = &service["healthcheck"]["test"];
        assert!(
            test.as_sequence().is_some_and(|t| t.len() > 1),
            "{name} has no health check"
        );
        if let Some(dependencies) = service["depends_on"].as_mapping() {
            for (dependency, how) in dependencies {
                let dependency = dependency.as_str().unwrap();
                assert!(
                    services.contains_key(dependency),
                    "{name} depends on an unknown {dependency}"
                );
                assert_eq!(
                    how["condition"].as_str(),
                    Some("service_healthy"),
                    "{name} must wait for {dependency} to be healthy"
                );
            }
        }
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            assert!(
                declared_volumes.contains(source),
                "{name} mounts {source}, which is not a named volume"
            );
        }
        let published = service.get("ports").is_some();
        assert_eq!(
            published,
            name == "gateway",
            "only the gateway publishes a port ({name})"
        );
    }
    for (binary, count) in [("matching-service", 2), ("ws-handler", 2)] {
        let instances = services
            .values()
            .filter(|s| compose_binary(s).as_deref() == Some(binary))
            .count();
        assert_eq!(instances, count, "instances of {binary}");
    }
}

#[test]
fn compose_sets_exactly_variables_the_binaries_read_and_every_required_one() {
    let compose = compose();
    let services = services(&compose);
    let mut seen = BTreeSet::new();
    for (name, service) in &services {
        let Some(binary) = compose_binary(service) else {
            continue;
        };
        seen.insert(binary.clone());
        let settings = binary_settings(&binary);
        let env = compose_env(service);
        for variable in env.keys() {
            assert!(
                settings.contains_key(variable) || LIBRARY_VARIABLES.contains(&variable.as_str()),
                "{name} sets {variable}, which {binary} does not read"
            );
        }
        for setting in settings.values().filter(|s| s.required) {
            assert!(
                env.contains_key(&setting.env),
                "{name} does not set {}, which {binary} requires",
                setting.env
            );
        }
        // The health check asks this very listener.
        let port = listen_port(&env);
        let test: Vec<&str> = service["healthcheck"]["test"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        // A URL argument, or one inside a `sh -c` script (the gateway's picks http or https).
        let url = test
            .iter()
            .flat_map(|a| a.split_whitespace())
            .map(|word| word.trim_end_matches(';'))
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("{name}'s health check asks no URL"));
        assert_eq!(
            host_and_port(url),
            Some(("127.0.0.1".to_owned(), port)),
            "{name}'s health check"
        );
        assert!(url.ends_with("/readyz"), "{name}'s health check is /readyz");
    }
    let all: BTreeSet<String> = BINARIES.iter().map(|(b, _)| (*b).to_owned()).collect();
    assert_eq!(seen, all, "every service binary runs in the compose file");
}

#[test]
fn compose_urls_name_the_port_the_target_service_listens_on() {
    let compose = compose();
    let services = services(&compose);
    let ports: BTreeMap<String, u16> = services
        .iter()
        .filter(|(_, s)| compose_binary(s).is_some())
        .map(|(name, s)| (name.clone(), listen_port(&compose_env(s))))
        .collect();
    let mut checked = 0;
    for (name, service) in &services {
        for (variable, list) in compose_env(service) {
            // A gateway upstream is a comma-separated list of instances.
            for value in list.split(',') {
                let Some((host, port)) = host_and_port(value) else {
                    continue;
                };
                if variable.ends_with("_PUBLIC_URL") {
                    assert_eq!(host, *name, "{name}'s {variable} names itself");
                }
                if let Some(listening) = ports.get(&host) {
                    assert_eq!(port, *listening, "{name}: {variable}={value}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} service URLs found");
}

/// Runs `scripts/cluster.sh` with arguments, without touching any state.
fn cluster(args: &[&str]) -> String {
    let state = std::env::temp_dir().join(format!("rc-cluster-check-{}", std::process::id()));
    let output = Command::new("bash")
        .arg(root().join("scripts/cluster.sh"))
        .args(args)
        .env("RC_CLUSTER_DIR", &state)
        .env_remove("RC_SERVICE_TOKEN")
        .env_remove("RC_CLUSTER_PORT_BASE")
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "cluster.sh {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !state.exists(),
        "cluster.sh {args:?} wrote into its state directory"
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The script's instances: name → (binary, port).
fn script_instances() -> BTreeMap<String, (String, u16)> {
    cluster(&["instances"])
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 3, "instance line {line:?}");
            (
                fields[0].to_owned(),
                (fields[1].to_owned(), fields[2].parse().unwrap()),
            )
        })
        .collect()
}

fn script_env(instance: &str) -> BTreeMap<String, String> {
    cluster(&["env", instance])
        .lines()
        .map(|line| {
            let (name, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("env line {line:?}"));
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn the_cluster_script_runs_the_compose_topology_with_the_same_variables() {
    let compose = compose();
    let services = services(&compose);
    let instances = script_instances();
    let compose_apps: BTreeMap<&String, String> = services
        .iter()
        .filter_map(|(name, s)| compose_binary(s).map(|b| (name, b)))
        .collect();
    assert_eq!(
        instances.keys().collect::<BTreeSet<_>>(),
        compose_apps.keys().copied().collect::<BTreeSet<_>>(),
        "the same instances"
    );
    let by_port: BTreeMap<u16, &String> = instances
        .iter()
        .map(|(name, (_, port))| (*port, name))
        .collect();
    for (name, (binary, port)) in &instances {
        assert_eq!(binary, &compose_apps[name], "{name}'s binary");
        let script = script_env(name);
        let composed = compose_env(&services[name]);
        assert_eq!(
            script.keys().collect::<Vec<_>>(),
            composed.keys().collect::<Vec<_>>(),
            "{name}: the script and the compose file set different variables"
        );
        assert_eq!(listen_port(&script), *port, "{name} listens on its port");
        // Wired the same way: a URL to service X in compose is a URL to X's port here, in
        // the same place of a comma-separated list.
        for (variable, list) in &composed {
            let scripted: Vec<&str> = script[variable].split(',').collect();
            let composed_list: Vec<&str> = list.split(',').collect();
            for (position, value) in composed_list.iter().enumerate() {
                let Some((host, _)) = host_and_port(value) else {
                    continue;
                };
                if !compose_apps.contains_key(&host) {
                    continue;
                }
                assert_eq!(
                    scripted.len(),
                    composed_list.len(),
                    "{name}: {variable} lists {list} in compose but {} in the script",
                    script[variable]
                );
                let (_, script_port) = host_and_port(scripted[position])
                    .unwrap_or_else(|| panic!("{name}: {variable}={} is no URL", script[variable]));
                assert_eq!(
                    by_port.get(&script_port).map(|n| n.as_str()),
                    Some(host.as_str()),
                    "{name}: {variable} points at {host} in compose but at port {script_port} in the script"
                );
            }
        }
        for (variable, list) in &script {
            for value in list.split(',') {
                if let Some((host, _)) = host_and_port(value) {
                    assert_eq!(host, "127.0.0.1", "{name}: {variable} stays on loopback");
                }
            }
        }
    }
}

/// Every metric recorded in the crates' sources: name → kind.
fn recorded_metrics() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut metrics: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for (binary, _) in BINARIES.iter().copied().chain([("service-kit", &[][..])]) {
        for file in rust_files(&root().join(binary).join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            for kind in ["counter", "gauge", "histogram"] {
                let macro_call = format!("metrics::{kind}!(");
                for (start, _) in text.match_indices(&macro_call) {
                    let rest = text[start + macro_call.len()..].trim_start();
                    let name = rest
                        .strip_prefix('"')
                        .and_then(|r| r.split('"').next())
                        .unwrap_or_else(|| {
                            panic!("{}: a metric name is not a literal", file.display())
                        });
                    let entry = metrics
                        .entry(name.to_owned())
                        .or_insert_with(|| (kind.to_owned(), BTreeSet::new()));
                    assert_eq!(entry.0, kind, "{name} is recorded as two kinds");
                    entry.1.insert(binary.to_owned());
                }
            }
        }
    }
    assert!(metrics.contains_key("http_requests_total"));
    metrics
}

/// The `docs/OPERATIONS.md` settings tables, generated from the declarations.
fn settings_tables() -> String {
    let mut out = String::new();
    let sections: [(&str, &str); 8] = [
        ("Every service (`service-kit`)", "service-kit/src/config.rs"),
        ("gateway", "gateway/src/config.rs"),
        ("auth-service", "auth-service/src/config.rs"),
        ("message-service", "message-service/src/config.rs"),
        ("matching-service", "matching-service/src/config.rs"),
        ("ws-manager", "ws-manager/src/config.rs"),
        ("ws-handler", "ws-handler/src/config.rs"),
        (
            "random-chats (the one-process form; it also reads the gateway's limits)",
            "random-chats/src/main.rs",
        ),
    ];
    for (title, file) in sections {
        out.push_str(&format!(
            "\n#### {title}\n\nFrom `{file}`.\n\n| variable | default | meaning |\n|---|---|---|\n"
        ));
        for setting in settings_in(file) {
            let default = match (&setting.default, setting.required) {
                (Some(d), _) if d.is_empty() => "(empty)".to_owned(),
                (Some(d), _) => format!("`{d}`"),
                (None, true) => "**required**".to_owned(),
                (None, false) => "unset".to_owned(),
            };
            out.push_str(&format!(
                "| `{}` | {default} | {} |\n",
                setting.env,
                setting.doc.replace('|', "\\|")
            ));
        }
    }
    out
}

/// The `docs/OPERATIONS.md` metrics table, generated from the sources.
fn metrics_table() -> String {
    let mut out = String::from("\n| metric | type | recorded by |\n|---|---|---|\n");
    for (name, (kind, crates)) in recorded_metrics() {
        let crates: Vec<String> = crates
            .iter()
            .map(|c| match c.as_str() {
                "service-kit" => "every service (`service-kit`)".to_owned(),
                c => format!("`{c}`"),
            })
            .collect();
        out.push_str(&format!("| `{name}` | {kind} | {} |\n", crates.join(", ")));
    }
    out
}

/// Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
fn splice(document: &str, name: &str, generated: &str) -> String {
    let begin = format!("<!-- {name}:begin (generated by test-support/tests/deploy_config.rs) -->");
    let end = format!("<!-- {name}:end -->");
    let start = document
        .find(&begin)
        .unwrap_or_else(|| panic!("docs/OPERATIONS.md lacks the marker {begin}"));
    let stop = document
        .find(&end)
        .unwrap_or_else(|| panic!("docs/OPERATIONS.md lacks the marker {end}"));
    format!(
        "{}{begin}\n{generated}\n{}",
        &document[..start],
        &document[stop..]
    )
}

#[test]
fn the_operations_guide_lists_every_setting_and_metric_as_the_code_declares_them() {
    let current = read("docs/OPERATIONS.md");
    let expected = splice(
        &splice(&current, "settings", &settings_tables()),
        "metrics",
        &metrics_table(),
    );
    if std::env::var("RC_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(root().join("docs/OPERATIONS.md"), &expected).unwrap();
        return;
    }
    assert!(
        current == expected,
        "docs/OPERATIONS.md is out of date with the settings or metrics in the code; \
         run `RC_UPDATE_DOCS=1 cargo test -p test-support --test deploy_config` and review the diff"
    );
}

#[test]
fn the_dashboard_charts_every_recorded_metric_and_nothing_else() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana-dashboard.json")).unwrap();
    let mut expressions = Vec::new();
    fn collect(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    match (key.as_str(), inner) {
                        ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                        _ => collect(inner, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
            _ => {}
        }
    }
    collect(&dashboard, &mut expressions);
    assert!(!expressions.is_empty(), "the dashboard has no queries");
    let metrics = recorded_metrics();
    let mut charted = BTreeSet::new();
    for expression in &expressions {
        // Every series is selected with braces: `name{...}`.
        for (at, _) in expression.match_indices('{') {
            let name: String = expression[..at]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if name.is_empty() {
                continue;
            }
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix).filter(|base| {
                        metrics
                            .get(*base)
                            .is_some_and(|(kind, _)| kind == "histogram")
                    })
                })
                .unwrap_or(&name)
                .to_owned();
            assert!(
                metrics.contains_key(&family) || family == "up",
                "the dashboard queries {name}, which no code records ({expression})"
            );
            charted.insert(family);
        }
    }
    for name in metrics.keys() {
        assert!(
            charted.contains(name),
            "the dashboard does not chart {name}"
        );
    }
}

#[test]
fn docker_compose_validates_the_file_when_it_is_installed() {
    let validated = Command::new("docker-compose")
        .current_dir(root())
        .args(["-f", "docker-compose.yml", "config", "-q"])
        .env_remove("RC_SERVICE_TOKEN")
        .env_remove("POSTGRES_PASSWORD")
        .output();
    match validated {
        Ok(output) => assert!(
            output.status.success(),
            "docker-compose config -q: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                !std::env::var("RC_REQUIRE_DOCKER_COMPOSE").is_ok_and(|v| v == "1"),
                "RC_REQUIRE_DOCKER_COMPOSE=1 but docker-compose is not installed"
            );
            eprintln!("skipped: docker-compose is not installed (apt-get install docker-compose)");
        }
        Err(err) => panic!("running docker-compose: {err}"),
    }
}

#[test]
fn the_settings_parser_reads_defaults_requirements_and_docs() {
    let common = settings_in("service-kit/src/config.rs");
    let token = common.iter().find(|s| s.env == "RC_SERVICE_TOKEN").unwrap();
    assert!(token.required);
    assert!(token.doc.starts_with("Shared secret"));
    let issuer = common.iter().find(|s| s.env == "RC_TOKEN_ISSUER").unwrap();
    assert_eq!(issuer.default.as_deref(), Some("random-chats-auth"));
    let format = common.iter().find(|s| s.env == "RC_LOG_FORMAT").unwrap();
    assert_eq!(format.default.as_deref(), Some("pretty"));
    let auth = binary_settings("auth-service");
    assert_eq!(
        auth["AUTH_REFRESH_TOKEN_TTL_SECS"].default.as_deref(),
        Some("2592000")
    );
    assert!(!auth["AUTH_DYNAMODB_ENDPOINT"].required);
    assert!(!auth["AUTH_ADMINS"].required);
    let message = binary_settings("message-service");
    assert_eq!(
        message["MESSAGE_REPORTS_PER_WINDOW"].default.as_deref(),
        Some("10")
    );
}
