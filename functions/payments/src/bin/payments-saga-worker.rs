fn main() -> Result<(), shared::function::BoxError> {
    shared::function::main(payments::entrypoints::saga_worker)
}
