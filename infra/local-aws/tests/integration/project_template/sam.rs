//! template.yaml as CloudFormation deploys it: through aws-sam-translator, the SAM transform
//! `sam deploy` has CloudFormation run (pinned in requirements-dev.txt, installed by `make setup`).

use std::process::Command;

use local_aws::{Moto, project_root};
use serde_json::Value;

/// The translated template (`sam_translate.py` beside this file), as JSON.
pub fn translated() -> Value {
    let python = Moto::python();
    assert!(
        python.exists(),
        "{} is missing: `make setup` installs aws-sam-translator into .venv (requirements-dev.txt)",
        python.display()
    );
    let script = project_root().join("infra/local-aws/tests/integration/project_template/sam_translate.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(project_root().join("template.yaml"))
        // The translator names ARNs by region; any region does for the template's shape.
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'samtranslator'"),
        "aws-sam-translator is not installed in .venv: run `make setup` (it is pinned in requirements-dev.txt)"
    );
    assert!(output.status.success(), "the SAM transform of template.yaml failed: {stderr}");
    serde_json::from_slice(&output.stdout).expect("the translator prints JSON")
}

/// The resources of `kind` in a translated template, by logical id.
pub fn of_type<'a>(template: &'a Value, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
    template["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(move |(_, r)| r["Type"] == kind)
        .map(|(id, r)| (id.as_str(), r))
}

/// The logical id named by `{"Fn::GetAtt": [id, attribute]}`, `{"Ref": id}` or `!GetAtt id.attr`.
pub fn referenced<'a>(value: &'a Value, attribute: &str) -> Option<&'a str> {
    if let Some(id) = value.get("Ref").and_then(Value::as_str) {
        return (attribute == "Ref").then_some(id);
    }
    let parts = value.get("Fn::GetAtt")?.as_array()?;
    (parts.get(1)?.as_str()? == attribute).then(|| parts.first()?.as_str())?
}
