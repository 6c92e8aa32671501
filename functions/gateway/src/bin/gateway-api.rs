fn main() -> Result<(), shared::function::BoxError> {
    shared::function::main(gateway::entrypoints::api)
}
