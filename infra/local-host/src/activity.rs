//! What the host's background tasks share: the invocation log (printed and kept), the last
//! moment anything was delivered (to tell when the system has settled), and the test hook that
//! decides how saga commands are delivered.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shared::aws::saga::SfnTaskReporter;

use crate::{Delivery, Invocation};

type Interceptor = Box<dyn Fn(&str) -> Delivery + Send + Sync>;

pub(crate) struct Activity {
    interceptor: Mutex<Option<Interceptor>>,
    invocations: Mutex<Vec<Invocation>>,
    log: bool,
    started: Instant,
    /// Milliseconds since `started` of the last delivery.
    last_activity_ms: AtomicU64,
    /// Answers saga commands that the interceptor answers instead of the worker.
    pub(crate) reporter: SfnTaskReporter,
}

impl Activity {
    pub(crate) fn new(log: bool, reporter: SfnTaskReporter) -> Self {
        Self {
            interceptor: Mutex::new(None),
            invocations: Mutex::new(Vec::new()),
            log,
            started: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
            reporter,
        }
    }

    pub(crate) fn touch(&self) {
        self.last_activity_ms.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long nothing has been delivered.
    pub(crate) fn quiet_for(&self) -> Duration {
        let now = self.started.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_activity_ms.load(Ordering::Relaxed)))
    }

    /// Keeps (and prints) an invocation that just ended.
    pub(crate) fn record(&self, mut invocation: Invocation) {
        self.touch();
        invocation.at = chrono::Utc::now() - invocation.duration;
        if self.log {
            println!("{}", invocation.line());
        }
        self.invocations.lock().unwrap().push(invocation);
    }

    pub(crate) fn invocations(&self) -> Vec<Invocation> {
        self.invocations.lock().unwrap().clone()
    }

    pub(crate) fn intercept(&self, interceptor: Interceptor) {
        *self.interceptor.lock().unwrap() = Some(interceptor);
    }

    /// How a saga command of this type is to be delivered now.
    pub(crate) fn delivery_of(&self, command: &str) -> Delivery {
        match self.interceptor.lock().unwrap().as_ref() {
            Some(decide) => decide(command),
            None => Delivery::Handle,
        }
    }
}
