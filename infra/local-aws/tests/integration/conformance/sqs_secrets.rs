//! SQS (send, receive, delete, visibility timeout, long polling) and Secrets Manager.

use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use aws_sdk_sqs::types::MessageSystemAttributeName;

use super::support::*;

// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html
// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html
// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessage.html
#[tokio::test]
async fn a_message_not_deleted_comes_back_after_its_visibility_timeout() {
    let moto = moto().await;
    let sqs = aws_sdk_sqs::Client::new(&config(&moto));
    let (url, _) = queue(&sqs, &local_aws::unique_name("visibility")).await;
    sqs.send_message().queue_url(&url).message_body("hello").send().await.unwrap();
    let receive = || {
        sqs.receive_message()
            .queue_url(&url)
            .visibility_timeout(1)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
    };
    let first = receive().await.unwrap();
    assert_eq!(first.messages().len(), 1);
    assert_eq!(first.messages()[0].body(), Some("hello"));
    assert!(receive().await.unwrap().messages().is_empty(), "invisible while being handled");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let again = receive().await.unwrap();
    let message = &again.messages()[0];
    assert_eq!(message.body(), Some("hello"), "redelivered once the visibility timeout passed");
    let count = message.attributes().and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount));
    assert_eq!(count.map(String::as_str), Some("2"));
    sqs.delete_message().queue_url(&url).receipt_handle(message.receipt_handle().unwrap()).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(receive().await.unwrap().messages().is_empty(), "deleted: never again");
}

// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-short-and-long-polling.html
// (a long poll returns as soon as a message arrives, or empty after WaitTimeSeconds)
#[tokio::test]
async fn a_long_poll_waits_for_a_message() {
    let moto = moto().await;
    let sqs = aws_sdk_sqs::Client::new(&config(&moto));
    let (url, _) = queue(&sqs, &local_aws::unique_name("poll")).await;
    let started = Instant::now();
    let empty = sqs.receive_message().queue_url(&url).wait_time_seconds(1).send().await.unwrap();
    assert!(empty.messages().is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900), "waited {:?}", started.elapsed());
    let sender = {
        let (sqs, url) = (sqs.clone(), url.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            sqs.send_message().queue_url(&url).message_body("late").send().await.unwrap();
        })
    };
    let started = Instant::now();
    let got = sqs.receive_message().queue_url(&url).wait_time_seconds(5).send().await.unwrap();
    sender.await.unwrap();
    assert_eq!(got.messages().first().and_then(|m| m.body()), Some("late"));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(4), "waited {waited:?}");
}

// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_GetQueueAttributes.html
// (ApproximateNumberOfMessages: available; ...NotVisible: in flight; ...Delayed: not yet available)
// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html
// (MessageRetentionPeriod: a message older than it is deleted, never received)
#[tokio::test]
async fn queue_attributes_count_messages_by_state_and_a_fresh_message_is_received() {
    use aws_sdk_sqs::types::QueueAttributeName as Name;
    let moto = moto().await;
    let sqs = aws_sdk_sqs::Client::new(&config(&moto));
    let (url, _) = queue(&sqs, &local_aws::unique_name("counts")).await;
    for body in ["a", "b", "c"] {
        sqs.send_message().queue_url(&url).message_body(body).send().await.unwrap();
    }
    sqs.send_message().queue_url(&url).message_body("later").delay_seconds(30).send().await.unwrap();
    let taken = sqs.receive_message().queue_url(&url).visibility_timeout(30).send().await.unwrap();
    assert_eq!(taken.messages().len(), 1);
    let counts = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(Name::ApproximateNumberOfMessages)
        .attribute_names(Name::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(Name::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    let count = |name: Name| counts.attributes().and_then(|a| a.get(&name)).cloned();
    assert_eq!(count(Name::ApproximateNumberOfMessages).as_deref(), Some("2"), "two available");
    assert_eq!(count(Name::ApproximateNumberOfMessagesNotVisible).as_deref(), Some("1"), "one in flight");
    assert_eq!(count(Name::ApproximateNumberOfMessagesDelayed).as_deref(), Some("1"), "one delayed");
    assert_eq!(counts.attributes().map(|a| a.len()), Some(3), "only the attributes asked for");

    // Retention (60 s is the minimum) is checked on receive: a fresh message is within it.
    let (old, _) = queue(&sqs, &local_aws::unique_name("retention")).await;
    sqs.set_queue_attributes().queue_url(&old).attributes(Name::MessageRetentionPeriod, "60").send().await.unwrap();
    sqs.send_message().queue_url(&old).message_body("fresh").send().await.unwrap();
    let fresh = sqs.receive_message().queue_url(&old).visibility_timeout(0).send().await.unwrap();
    assert_eq!(fresh.messages().first().and_then(|m| m.body()), Some("fresh"), "within its retention");
}

// https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html
// https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html
#[tokio::test]
async fn a_secret_string_is_read_back_by_name_or_arn() {
    let moto = moto().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&config(&moto));
    let name = local_aws::unique_name("provider-key");
    let value = r#"{"api_key":"sk_test_123"}"#;
    let created = secrets.create_secret().name(&name).secret_string(value).send().await.unwrap();
    let arn = created.arn().unwrap().to_owned();
    for id in [&name, &arn] {
        let read = secrets.get_secret_value().secret_id(id).send().await.unwrap();
        assert_eq!(read.secret_string(), Some(value));
        assert_eq!(read.name(), Some(name.as_str()));
    }
    let err = secrets.get_secret_value().secret_id("no-such-secret").send().await.unwrap_err();
    assert!(matches!(err.into_service_error(), GetSecretValueError::ResourceNotFoundException(_)));
}
