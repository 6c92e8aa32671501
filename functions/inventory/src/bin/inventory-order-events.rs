fn main() -> Result<(), shared::function::BoxError> {
    shared::function::main(inventory::entrypoints::order_events)
}
