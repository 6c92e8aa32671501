//! The saga starter in memory: Step Functions' named executions, for tests and the local host.

use std::sync::Mutex;

use async_trait::async_trait;

/// Records the executions it is asked to start; a second start with a name is refused the way
/// Step Functions refuses it.
#[derive(Default)]
pub struct InMemorySagaStarter {
    started: Mutex<Vec<(String, crate::saga::SagaInput)>>,
}

impl InMemorySagaStarter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn started(&self) -> Vec<(String, crate::saga::SagaInput)> {
        self.started.lock().unwrap().clone()
    }
}

#[async_trait]
impl crate::saga::SagaStarter for InMemorySagaStarter {
    async fn start(
        &self,
        name: &str,
        input: &crate::saga::SagaInput,
    ) -> Result<crate::saga::StartOutcome, crate::saga::StartError> {
        let mut started = self.started.lock().unwrap();
        let execution_arn = format!("arn:aws:states:local:000000000000:execution:fulfilment:{name}");
        if started.iter().any(|(n, _)| n == name) {
            return Ok(crate::saga::StartOutcome::AlreadyStarted { execution_arn });
        }
        started.push((name.to_owned(), input.clone()));
        Ok(crate::saga::StartOutcome::Started { execution_arn })
    }
}
