//! The code behind each binary the template names: the services' own tables of functions
//! (`FUNCTIONS`, [`shared::function`]), the same build functions their Lambda `main`s run. Which
//! function runs a binary, with which environment and triggers, comes from the template.

use shared::config::Lookup;
pub use shared::function::{EventFunction, Function, Handler, InvokeFunction, StreamFunction};

/// Every function of every service.
pub fn all() -> impl Iterator<Item = &'static Function> {
    [
        orders::entrypoints::FUNCTIONS,
        inventory::entrypoints::FUNCTIONS,
        payments::entrypoints::FUNCTIONS,
        gateway::entrypoints::FUNCTIONS,
    ]
    .into_iter()
    .flatten()
}

/// Builds the handler of `binary` as its Lambda would at cold start, with `env` as its
/// environment.
pub async fn build(binary: &str, sdk: &aws_config::SdkConfig, env: Lookup<'_>) -> Result<Handler, String> {
    let function = all()
        .find(|f| f.binary == binary)
        .ok_or_else(|| format!("no service has a function for the binary `{binary}`"))?;
    (function.build)(sdk, env).await.map_err(|e| format!("{binary}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The template's functions and the services' tables are one set: every binary the template
    /// names has exactly one build function, and no table holds a function the template does not
    /// deploy. (`local-aws`'s project test checks each binary's `src/bin/` file and `events/`.)
    #[test]
    fn the_tables_hold_exactly_the_template_s_functions() {
        let template = local_aws::Template::load_project().unwrap();
        let deployed: BTreeSet<String> = template
            .resources_of_type("AWS::Serverless::Function")
            .map(|(id, r)| {
                let binary = r.metadata.get("BuildProperties").and_then(|p| p.get("Binary")).and_then(|b| b.as_str());
                binary.unwrap_or_else(|| panic!("{id}: no Metadata.BuildProperties.Binary")).to_owned()
            })
            .collect();
        let tabled: Vec<&str> = super::all().map(|f| f.binary).collect();
        let unique: BTreeSet<String> = tabled.iter().map(|b| (*b).to_owned()).collect();
        assert_eq!(unique.len(), tabled.len(), "a binary is in the tables twice: {tabled:?}");
        assert_eq!(unique, deployed, "the tables (left) and the template (right)");
    }
}
