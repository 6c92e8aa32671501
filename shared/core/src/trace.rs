//! W3C Trace Context for one invocation: the trace it belongs to, carried in HTTP headers, the
//! event envelope and the saga input, and the X-Ray header AWS calls forward.

/// The W3C Trace Context header (<https://www.w3.org/TR/trace-context/#traceparent-header>).
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// Where the Lambda runtime puts the invocation's X-Ray header
/// (<https://docs.aws.amazon.com/lambda/latest/dg/services-xray.html>).
const XRAY_ENV: &str = "_X_AMZN_TRACE_ID";

/// One function invocation's place in a distributed trace: the trace it belongs to, its own span
/// id, the span that called it, and the W3C trace flags (bit 0: sampled).
///
/// A minimal W3C Trace Context, not an OpenTelemetry SDK: ids are made and parsed here, carried
/// in HTTP headers, the event envelope and the saga input, and written on every log line. Trace
/// ids start with the Unix time in seconds, as X-Ray requires, so the same id is a valid X-Ray
/// trace id ([`TraceContext::xray_trace_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    parent_id: Option<u64>,
    flags: u8,
}

fn hex_field<const N: usize>(text: &str) -> Option<&str> {
    (text.len() == N && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(text)
}

fn nonzero_u64() -> u64 {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return id;
        }
    }
}

impl TraceContext {
    /// A new trace, sampled: the first 32 bits of its id are the current Unix time in seconds.
    pub fn new_root() -> Self {
        let seconds =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32);
        let random = u128::from(fastrand::u64(..)) << 32 | u128::from(fastrand::u32(..)) | 1;
        Self { trace_id: u128::from(seconds) << 96 | random, span_id: nonzero_u64(), parent_id: None, flags: 1 }
    }

    /// A `traceparent` header as W3C Trace Context level 1 defines it; `None` for anything else.
    /// A version above `00` is read as `00` with whatever follows the flags ignored, as the
    /// specification asks.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let mut parts = header.split('-');
        let version = hex_field::<2>(parts.next()?)?;
        let trace_id = u128::from_str_radix(hex_field::<32>(parts.next()?)?, 16).ok()?;
        let parent_id = u64::from_str_radix(hex_field::<16>(parts.next()?)?, 16).ok()?;
        let flags_field = parts.next()?;
        let flags = u8::from_str_radix(hex_field::<2>(flags_field.get(..2)?)?, 16).ok()?;
        let rest_ok = match version {
            "ff" => false,
            "00" => flags_field.len() == 2 && parts.next().is_none(),
            _ => flags_field.len() == 2,
        };
        (rest_ok && trace_id != 0 && parent_id != 0).then_some(Self {
            trace_id,
            span_id: parent_id,
            parent_id: None,
            flags,
        })
    }

    /// The trace of an X-Ray header (`Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`).
    pub fn from_xray(header: &str) -> Option<Self> {
        let mut root = None;
        let mut parent = None;
        let mut flags = 0;
        for part in header.split(';') {
            match part.trim().split_once('=') {
                Some(("Root", value)) => {
                    let mut pieces = value.split('-');
                    let (version, time, random) = (pieces.next()?, pieces.next()?, pieces.next()?);
                    if version != "1" || pieces.next().is_some() {
                        return None;
                    }
                    let hex = format!("{}{}", hex_field::<8>(time)?, hex_field::<24>(random)?);
                    root = u128::from_str_radix(&hex, 16).ok().filter(|id| *id != 0);
                }
                Some(("Parent", value)) => parent = u64::from_str_radix(hex_field::<16>(value)?, 16).ok(),
                Some(("Sampled", "1")) => flags = 1,
                _ => {}
            }
        }
        Some(Self {
            trace_id: root?,
            span_id: parent.filter(|p| *p != 0).unwrap_or_else(nonzero_u64),
            parent_id: None,
            flags,
        })
    }

    /// This invocation's context: a new span in the caller's trace when `traceparent` is a valid
    /// header, else in the invocation's X-Ray trace (Lambda's `_X_AMZN_TRACE_ID`), else a new
    /// trace. A malformed header starts a new trace; it never fails the event that carried it.
    pub fn continue_from(traceparent: Option<&str>) -> Self {
        traceparent
            .and_then(Self::parse)
            .or_else(|| std::env::var(XRAY_ENV).ok().as_deref().and_then(Self::from_xray))
            .map_or_else(Self::new_root, |caller| caller.child())
    }

    /// A new span of the same trace, called by this one.
    pub fn child(&self) -> Self {
        Self { trace_id: self.trace_id, span_id: nonzero_u64(), parent_id: Some(self.span_id), flags: self.flags }
    }

    /// 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        hex::encode(self.trace_id.to_be_bytes())
    }

    /// 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        hex::encode(self.span_id.to_be_bytes())
    }

    pub fn parent_id(&self) -> Option<String> {
        self.parent_id.map(|id| hex::encode(id.to_be_bytes()))
    }

    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The `traceparent` header that makes the receiver a child of this span.
    pub fn traceparent(&self) -> String {
        // Written into one buffer: `format!` with `{:032x}` was 3 % of a gateway order view's
        // instructions (a traceparent per downstream call).
        let mut header = *b"00-00000000000000000000000000000000-0000000000000000-00";
        let hex = "the buffer holds every field";
        hex::encode_to_slice(self.trace_id.to_be_bytes(), &mut header[3..35]).expect(hex);
        hex::encode_to_slice(self.span_id.to_be_bytes(), &mut header[36..52]).expect(hex);
        hex::encode_to_slice([self.flags], &mut header[53..55]).expect(hex);
        String::from_utf8(header.to_vec()).expect("hex digits and dashes are ASCII")
    }

    /// The same trace id as X-Ray writes it: `1-<8 hex digits of time>-<24 hex digits>`.
    pub fn xray_trace_id(&self) -> String {
        let hex = self.trace_id();
        format!("1-{}-{}", &hex[..8], &hex[8..])
    }

    /// The X-Ray trace header of this trace, for the AWS calls that carry one to the services
    /// they reach (EventBridge's `TraceHeader`, Step Functions' `traceHeader`):
    /// `Root=1-<time>-<random>;Sampled=<0|1>`, with `Parent=` the invocation's own X-Ray segment
    /// when Lambda's `_X_AMZN_TRACE_ID` belongs to the same trace. Our spans are not X-Ray
    /// segments, so they are never named as a parent.
    pub fn xray_header(&self) -> String {
        self.xray_header_within(std::env::var(XRAY_ENV).ok().as_deref())
    }

    /// [`TraceContext::xray_header`] inside an invocation whose X-Ray header is `invocation`.
    pub fn xray_header_within(&self, invocation: Option<&str>) -> String {
        let root = self.xray_trace_id();
        let field = |header: &'_ str, name: &str| {
            header.split(';').find_map(|part| part.trim().strip_prefix(name)?.strip_prefix('=').map(str::to_owned))
        };
        let parent = invocation
            .filter(|header| field(header, "Root").as_deref() == Some(root.as_str()))
            .and_then(|header| field(header, "Parent"))
            .filter(|parent| hex_field::<16>(parent).is_some());
        let sampled = u8::from(self.sampled());
        match parent {
            Some(parent) => format!("Root={root};Parent={parent};Sampled={sampled}"),
            None => format!("Root={root};Sampled={sampled}"),
        }
    }

    /// Runs `future` as this span: [`current`] and [`current_traceparent`] answer with it inside.
    pub async fn scope<F: std::future::Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// The span the current task runs in (see [`TraceContext::scope`]), if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|context| *context).ok()
}

/// The `traceparent` to send with an outgoing call or to put in a published event: the current
/// span as the parent. `None` outside any traced invocation.
pub fn current_traceparent() -> Option<String> {
    current().map(|context| context.traceparent())
}

/// The X-Ray header of the current span's trace ([`TraceContext::xray_header`]), `None` outside
/// any traced invocation.
pub fn current_xray_header() -> Option<String> {
    current().map(|context| context.xray_header())
}

/// The X-Ray header of the trace a `traceparent` names; `None` when it is absent or malformed.
pub fn xray_header_of(traceparent: Option<&str>) -> Option<String> {
    traceparent.and_then(TraceContext::parse).map(|context| context.xray_header())
}

#[cfg(test)]
mod trace_tests {
    use super::*;

    proptest::proptest! {
        /// Every id is spelt as `format!`'s zero-padded lowercase hex.
        #[test]
        fn ids_are_written_as_zero_padded_lowercase_hex(trace_id: u128, span_id: u64, parent: u64, flags: u8) {
            let context = TraceContext { trace_id, span_id, parent_id: Some(parent), flags };
            proptest::prop_assert_eq!(context.traceparent(), format!("00-{trace_id:032x}-{span_id:016x}-{flags:02x}"));
            proptest::prop_assert_eq!(context.trace_id(), format!("{trace_id:032x}"));
            proptest::prop_assert_eq!(context.span_id(), format!("{span_id:016x}"));
            proptest::prop_assert_eq!(context.parent_id(), Some(format!("{parent:016x}")));
        }
    }

    /// The example of <https://www.w3.org/TR/trace-context/#examples-of-http-traceparent-headers>.
    const W3C_EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_w3c_header_is_read_and_continued_in_the_same_trace() {
        let caller = TraceContext::parse(W3C_EXAMPLE).unwrap();
        assert_eq!(caller.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(caller.span_id(), "00f067aa0ba902b7");
        assert!(caller.sampled());
        assert_eq!(caller.traceparent(), W3C_EXAMPLE);
        let ours = TraceContext::continue_from(Some(W3C_EXAMPLE));
        assert_eq!(ours.trace_id(), caller.trace_id());
        assert_eq!(ours.parent_id().as_deref(), Some("00f067aa0ba902b7"));
        assert_ne!(ours.span_id(), caller.span_id());
        assert!(ours.traceparent().starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    }

    #[test]
    fn malformed_headers_are_refused_and_start_a_new_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
        // A later version may append fields; the first four are read.
        assert!(TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-next").is_some());
        let fresh = TraceContext::continue_from(Some("garbage"));
        assert_ne!(fresh.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(TraceContext::parse(&fresh.traceparent()).is_some());
    }

    #[test]
    fn a_new_trace_id_is_a_valid_x_ray_id_starting_with_the_time() {
        let context = TraceContext::new_root();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let xray = context.xray_trace_id();
        let (version, rest) = xray.split_once('-').unwrap();
        let (time, random) = rest.split_once('-').unwrap();
        assert_eq!((version, time.len(), random.len()), ("1", 8, 24));
        let seconds = u64::from_str_radix(time, 16).unwrap();
        assert!(now.abs_diff(seconds) <= 2, "{seconds} vs {now}");
        assert_ne!(TraceContext::new_root().trace_id(), context.trace_id());
    }

    #[test]
    fn an_x_ray_header_gives_the_same_trace() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let context = TraceContext::from_xray(header).unwrap();
        assert_eq!(context.trace_id(), "5759e988bd862e3fe1be46a994272793");
        assert_eq!(context.xray_trace_id(), "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(context.span_id(), "53995c3f42cd8ad8");
        assert!(context.sampled());
        assert_eq!(TraceContext::from_xray("Root=2-5759e988-bd862e3fe1be46a994272793"), None);
    }

    /// The header's form: <https://docs.aws.amazon.com/xray/latest/devguide/xray-concepts.html#xray-concepts-tracingheader>.
    #[test]
    fn the_x_ray_header_names_the_trace_and_the_invocation_s_segment_only_when_it_is_the_same_trace() {
        let context = TraceContext::parse(W3C_EXAMPLE).unwrap().child();
        let root = "1-4bf92f35-77b34da6a3ce929d0e0e4736";
        assert_eq!(context.xray_header_within(None), format!("Root={root};Sampled=1"));
        let same = format!("Root={root};Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:0");
        assert_eq!(context.xray_header_within(Some(&same)), format!("Root={root};Parent=53995c3f42cd8ad8;Sampled=1"));
        let other = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        assert_eq!(context.xray_header_within(Some(other)), format!("Root={root};Sampled=1"));
        let bad_parent = format!("Root={root};Parent=xyz;Sampled=1");
        assert_eq!(context.xray_header_within(Some(&bad_parent)), format!("Root={root};Sampled=1"));
        let unsampled = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert_eq!(unsampled.xray_header_within(None), format!("Root={root};Sampled=0"));
        // What we send is what we read back: the same trace.
        assert_eq!(
            TraceContext::from_xray(&context.xray_header_within(Some(&same))).unwrap().trace_id(),
            context.trace_id()
        );
        assert_eq!(xray_header_of(Some("garbage")), None);
        assert_eq!(xray_header_of(None), None);
    }

    #[tokio::test]
    async fn the_current_traceparent_is_the_scoped_span() {
        assert_eq!(current_traceparent(), None);
        let context = TraceContext::parse(W3C_EXAMPLE).unwrap().child();
        let inside = context.scope(async { current_traceparent() }).await;
        assert_eq!(inside, Some(context.traceparent()));
    }
}
