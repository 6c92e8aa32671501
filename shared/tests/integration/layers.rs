//! The layers of the shared code hold: `shared-core` pulls in no AWS, HTTP or Lambda crate, and
//! each service's domain module names no crate of its own but `shared-core` and the plain
//! data crates (serde, chrono, uuid, thiserror).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("shared/ sits in the workspace").to_path_buf()
}

/// Every crate `package` builds with (normal dependencies, all features, this platform), from
/// `cargo tree`.
fn dependencies_of(package: &str) -> BTreeSet<String> {
    let output = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "-p", package, "-e", "normal", "--all-features"])
        .args(["--prefix", "none", "--format", "{p}"])
        .current_dir(workspace())
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .expect("cargo tree writes UTF-8")
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// A crate of the AWS SDK, an HTTP stack or the Lambda runtime.
fn is_aws_http_or_lambda(name: &str) -> bool {
    const FAMILIES: [&str; 9] = ["aws", "http", "hyper", "axum", "tower", "lambda", "reqwest", "rustls", "h2"];
    let name = name.replace('_', "-");
    FAMILIES.iter().any(|family| name == *family || name.starts_with(&format!("{family}-")))
}

#[test]
fn the_core_builds_without_any_aws_http_or_lambda_crate() {
    let core = dependencies_of("shared-core");
    assert!(core.contains("serde") && core.contains("uuid"), "cargo tree listed the core's crates: {core:?}");
    let layered: Vec<_> = core.iter().filter(|name| is_aws_http_or_lambda(name)).collect();
    assert!(layered.is_empty(), "shared-core depends on {layered:?}: that belongs to the layers in `shared`");
    // The check itself tells the layers apart: the crate above the core has them all.
    let shared = dependencies_of("shared");
    for expected in ["aws-sdk-dynamodb", "axum", "http", "lambda_runtime", "reqwest"] {
        assert!(shared.contains(expected) && is_aws_http_or_lambda(expected), "{expected} in {shared:?}");
    }
}

/// The crates a service's domain may name.
const DOMAIN_MAY_USE: [&str; 6] = ["shared_core", "serde", "chrono", "uuid", "thiserror", "schemars"];

/// The `[dependencies]` of a crate's manifest, as Rust spells their names.
fn dependencies_in(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).expect("the manifest is readable");
    let section = text.split("[dependencies]").nth(1).expect("the manifest has [dependencies]");
    let section = section.split("\n[").next().unwrap_or_default();
    section
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split(['=', '.', ' ']).next())
        .map(|name| name.replace('-', "_"))
        .collect()
}

/// The crates `source` names in code (`name::`), comments left out.
fn crates_named(source: &str, candidates: &[String]) -> BTreeSet<String> {
    let code: String =
        source.lines().map(|line| line.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
    candidates
        .iter()
        .filter(|name| {
            code.match_indices(&format!("{name}::"))
                .any(|(at, _)| at == 0 || !code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':'))
        })
        .cloned()
        .collect()
}

#[test]
fn each_service_s_domain_depends_on_the_core_alone() {
    for service in ["orders", "inventory", "payments"] {
        let dir = workspace().join("functions").join(service);
        let dependencies = dependencies_in(&dir.join("Cargo.toml"));
        assert!(dependencies.iter().any(|d| d == "shared") && dependencies.iter().any(|d| d == "shared_core"));
        let domain = std::fs::read_to_string(dir.join("src/domain.rs")).expect("each service has src/domain.rs");
        let named = crates_named(&domain, &dependencies);
        assert!(named.contains("shared_core"), "{service}: the domain should name its core types: {named:?}");
        let beyond: Vec<_> = named.iter().filter(|name| !DOMAIN_MAY_USE.contains(&name.as_str())).collect();
        assert!(
            beyond.is_empty(),
            "functions/{service}/src/domain.rs uses {beyond:?}; a domain uses shared_core alone"
        );
    }
}

#[test]
fn a_domain_naming_the_upper_layer_is_caught() {
    let candidates = ["shared".to_owned(), "shared_core".to_owned(), "axum".to_owned()];
    let source =
        "use shared_core::money::Money;\n// shared::aws::dynamo does the I/O\nfn f() -> shared::ApiError { todo!() }";
    assert_eq!(crates_named(source, &candidates), BTreeSet::from(["shared".to_owned(), "shared_core".to_owned()]));
    assert_eq!(
        crates_named("use shared_core::X; // axum::Router", &candidates),
        BTreeSet::from(["shared_core".to_owned()])
    );
}
