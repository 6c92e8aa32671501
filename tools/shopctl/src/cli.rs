//! The command line and what each command does.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use shared::aws::publisher::EventBridgePublisher;

use crate::Error;
use crate::dlq::{self, Group, Letter, Letterbox};
use crate::redrive::{self, Source};
use crate::replay;
use crate::stack::{QueueKind, Stack};

/// The shop operator's tool: dead letters, redrives and replays, on AWS or on the local system.
#[derive(Debug, Parser)]
#[command(name = "shopctl", version)]
pub struct Cli {
    /// The CloudFormation stack (on AWS) or the local system's stack (`make local`: `local`).
    #[arg(long, env = "SHOP_STACK", default_value = "shop")]
    pub stack: String,
    /// The local system: resources named `<stack>-<LogicalId>`, the emulator from
    /// `AWS_ENDPOINT_URL` or `<state dir>/moto.json`.
    #[arg(long)]
    pub local: bool,
    /// The local system's state directory.
    #[arg(long, default_value = ".local")]
    pub state_dir: PathBuf,
    /// One JSON document per line instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dead-letter queues.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Sends dead letters back: `stream` failures (re-read from the stream or the table) and
    /// dead-lettered `event`s (to the bus); each message is deleted once redriven.
    Redrive {
        #[command(subcommand)]
        command: RedriveCommand,
    },
    /// Replays the event archive of a time window to the bus's rules, without `shop.saga` commands.
    Replay(ReplayArgs),
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Lists what sits in each DLQ, decoded and grouped (saga commands, order events, stream
    /// failures). Nothing is consumed.
    List,
}

#[derive(Debug, Args)]
pub struct Which {
    /// The SQS message ids to redrive (from `dlq list`).
    #[arg(required_unless_present = "all")]
    pub message_ids: Vec<String>,
    /// Every message of the kind.
    #[arg(long, conflicts_with = "message_ids")]
    pub all: bool,
}

impl Which {
    fn wants(&self, letter: &Letterbox) -> bool {
        self.all || self.message_ids.contains(&letter.message_id)
    }
}

#[derive(Debug, Subcommand)]
pub enum RedriveCommand {
    /// Republishes the events of failed stream batches with their original event ids.
    Stream(Which),
    /// Puts dead-lettered events back on the bus. Saga commands only with `--include-commands`
    /// (their task tokens have usually expired: the saga went on without them).
    Event {
        #[command(flatten)]
        which: Which,
        #[arg(long)]
        include_commands: bool,
    },
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Start of the window (RFC 3339, e.g. 2026-12-02T03:00:00Z).
    #[arg(long)]
    pub from: DateTime<Utc>,
    /// End of the window (RFC 3339).
    #[arg(long)]
    pub to: DateTime<Utc>,
    /// The replay's name (default: shopctl-<time>).
    #[arg(long)]
    pub name: Option<String>,
    /// Only say which rules the replay would go to.
    #[arg(long)]
    pub dry_run: bool,
}

struct Context {
    stack: Stack,
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    publisher: EventBridgePublisher,
    json: bool,
}

impl Context {
    fn say(&self, text: String, document: Value) {
        if self.json { println!("{document}") } else { println!("{text}") }
    }
}

/// Runs one command; returns the process's exit code.
pub async fn run(cli: Cli) -> Result<i32, Error> {
    let sdk = crate::stack::sdk_config(cli.local.then_some(cli.state_dir.as_path())).await?;
    let stack = if cli.local {
        Stack::local(&sdk, &cli.stack).await?
    } else {
        Stack::from_cloudformation(&sdk, &cli.stack).await?
    };
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let context = Context {
        publisher: EventBridgePublisher::new(events.clone(), stack.bus.clone()),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        streams: aws_sdk_dynamodbstreams::Client::new(&sdk),
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        events,
        stack,
        json: cli.json,
    };
    match cli.command {
        Command::Dlq { command: DlqCommand::List } => list(&context).await,
        Command::Redrive { command: RedriveCommand::Stream(which) } => redrive_streams(&context, &which).await,
        Command::Redrive { command: RedriveCommand::Event { which, include_commands } } => {
            redrive_events(&context, &which, include_commands).await
        }
        Command::Replay(args) => replay_archive(&context, &args).await,
    }
}

async fn list(context: &Context) -> Result<i32, Error> {
    for queue in &context.stack.queues {
        let letters = dlq::receive_all(&context.sqs, queue).await?;
        let all: Vec<&Letterbox> = letters.iter().collect();
        dlq::release(&context.sqs, queue, &all).await?;
        if !context.json {
            println!("{} ({} messages)", queue.logical_id, letters.len());
        }
        for group in [Group::SagaCommands, Group::OrderEvents, Group::StreamFailures, Group::Unreadable] {
            let in_group: Vec<&Letterbox> = letters.iter().filter(|l| l.group == group).collect();
            if in_group.is_empty() {
                continue;
            }
            if !context.json {
                println!("  {} ({})", group.title(), in_group.len());
            }
            for letter in in_group {
                let text = format!(
                    "    {}  {}  {}",
                    letter.message_id,
                    letter.sent_at.as_deref().unwrap_or("-"),
                    letter.letter.summary()
                );
                context.say(text, serde_json::to_value(letter).unwrap_or_default());
            }
        }
    }
    Ok(0)
}

async fn redrive_streams(context: &Context, which: &Which) -> Result<i32, Error> {
    let mut failures = 0;
    for queue in context.stack.queues.iter().filter(|q| q.kind == QueueKind::Relay) {
        let letters = dlq::receive_all(&context.sqs, queue).await?;
        let (chosen, others): (Vec<&Letterbox>, Vec<&Letterbox>) =
            letters.iter().partition(|l| matches!(l.letter, Letter::StreamBatch(_)) && which.wants(l));
        dlq::release(&context.sqs, queue, &others).await?;
        for letter in chosen {
            let Letter::StreamBatch(batch) = &letter.letter else { continue };
            let table = batch.table().unwrap_or_default();
            let result = match context.stack.table_id(table) {
                Some(logical_id) => {
                    redrive::stream_batch(&context.streams, &context.dynamodb, &context.publisher, batch, logical_id)
                        .await
                }
                None => Err(Error::Letter(format!("table {table} is not one of stack {}", context.stack.name))),
            };
            match result {
                Ok(republished) => {
                    dlq::delete(&context.sqs, queue, letter).await?;
                    let from = match republished.source {
                        Source::Stream => "stream",
                        Source::TableOutbox => "table outbox",
                    };
                    context.say(
                        format!(
                            "{} {}: republished {} events from the {from}: {}",
                            queue.logical_id,
                            letter.message_id,
                            republished.event_ids.len(),
                            republished.event_ids.join(" ")
                        ),
                        json!({"queue": queue.logical_id, "message_id": letter.message_id, "redriven": true,
                               "from": from, "event_ids": republished.event_ids}),
                    );
                }
                Err(e) => {
                    failures += 1;
                    dlq::release(&context.sqs, queue, &[letter]).await?;
                    context.say(
                        format!("{} {}: NOT redriven: {e}", queue.logical_id, letter.message_id),
                        json!({"queue": queue.logical_id, "message_id": letter.message_id, "redriven": false,
                               "error": e.to_string()}),
                    );
                }
            }
        }
    }
    Ok(if failures > 0 { 1 } else { 0 })
}

async fn redrive_events(context: &Context, which: &Which, include_commands: bool) -> Result<i32, Error> {
    let mut failures = 0;
    for queue in &context.stack.queues {
        let letters = dlq::receive_all(&context.sqs, queue).await?;
        let (chosen, others): (Vec<&Letterbox>, Vec<&Letterbox>) = letters.iter().partition(|l| {
            l.letter.event().is_some() && which.wants(l) && (include_commands || l.group != Group::SagaCommands)
        });
        dlq::release(&context.sqs, queue, &others).await?;
        for letter in chosen {
            let event = letter.letter.event().expect("chosen for its event");
            let event_id = event.pointer("/detail/event_id").and_then(Value::as_str).unwrap_or("-").to_owned();
            match redrive::event(&context.publisher, event).await {
                Ok(()) => {
                    dlq::delete(&context.sqs, queue, letter).await?;
                    context.say(
                        format!(
                            "{} {}: back on the bus: {}",
                            queue.logical_id,
                            letter.message_id,
                            letter.letter.summary()
                        ),
                        json!({"queue": queue.logical_id, "message_id": letter.message_id, "redriven": true,
                               "event_ids": [event_id]}),
                    );
                }
                Err(e) => {
                    failures += 1;
                    dlq::release(&context.sqs, queue, &[letter]).await?;
                    context.say(
                        format!("{} {}: NOT redriven: {e}", queue.logical_id, letter.message_id),
                        json!({"queue": queue.logical_id, "message_id": letter.message_id, "redriven": false,
                               "error": e.to_string()}),
                    );
                }
            }
        }
    }
    Ok(if failures > 0 { 1 } else { 0 })
}

async fn replay_archive(context: &Context, args: &ReplayArgs) -> Result<i32, Error> {
    if args.from >= args.to {
        return Err(Error::Usage("--from must be before --to".into()));
    }
    let choices = replay::choose_rules(&context.events, &context.stack.bus).await?;
    for choice in &choices {
        let text = match &choice.left_out {
            None => format!("replay to   {}", choice.name),
            Some(reason) => format!("leave out   {} ({reason})", choice.name),
        };
        context.say(text, json!({"rule": choice.name, "arn": choice.arn, "left_out": choice.left_out}));
    }
    if args.dry_run {
        return Ok(0);
    }
    let rules: Vec<String> = choices.iter().filter(|c| c.left_out.is_none()).map(|c| c.arn.clone()).collect();
    let name = args.name.clone().unwrap_or_else(|| format!("shopctl-{}", Utc::now().format("%Y%m%dT%H%M%S")));
    let finished = replay::run(
        &context.events,
        context.stack.archive.as_deref(),
        &context.stack.bus,
        &rules,
        (args.from, args.to),
        &name,
    )
    .await?;
    context.say(
        format!("replay {}: {} {}", finished.name, finished.state, finished.reason.as_deref().unwrap_or("")),
        json!({"replay": finished.name, "state": finished.state, "reason": finished.reason}),
    );
    Ok(if finished.state == "COMPLETED" { 0 } else { 1 })
}
