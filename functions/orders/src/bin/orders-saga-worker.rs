fn main() -> Result<(), shared::function::BoxError> {
    shared::function::main(orders::entrypoints::saga_worker)
}
