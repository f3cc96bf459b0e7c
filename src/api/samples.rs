//! The one story the spec's examples tell (the daily-etl run of
//! contract-123), as the values its parameters show: each of the
//! parameter's own type, so Swagger UI's prefilled requests succeed as sent.
//! The body and response examples in `examples` use the same values.

use super::{
    enums::{RunStatusBody, ValidationStatusBody},
    types::{DateFilter, OneOf},
};

pub const WEBHOOK_ID: &str = "whk_01HM7ZQ3D5F7H9K1M3P5R7T9V1";
pub const DELIVERY_ID: &str = "msg_01HM7ZR4E6G8J0L2N4Q6S8U0W2";
pub const RUN_ID: &str = "run_01HM7ZK2T1B8W3QX5V6Y9N4R2C";
pub const VALIDATION_ID: &str = "val_01HM7ZMZ8E4J6KQ2N5P8R1T3V7";
pub const CONTRACT_ID: &str = "contract-123";
pub const PIPELINE_NAME: &str = "daily-etl";
pub const PIPELINE_ID: &str = "airflow-dag-123";
/// A filter date as the list examples use it: the spec's execution date.
pub const START_DATE: &str = "2024-01-15";
pub const END_DATE: &str = "2030-01-01";

// Parameter examples, each of the parameter's own type. Filters name the
// example run's contract, pipeline and status, and a window that holds it.

pub fn contract_id() -> String {
    CONTRACT_ID.into()
}

pub fn contract_filter() -> Option<String> {
    Some(CONTRACT_ID.into())
}

pub fn pipeline_filter() -> Option<String> {
    Some(PIPELINE_NAME.into())
}

pub fn run_status_filter() -> Option<OneOf<RunStatusBody>> {
    Some(OneOf(RunStatusBody::Running))
}

pub fn validation_status_filter() -> Option<OneOf<ValidationStatusBody>> {
    Some(OneOf(ValidationStatusBody::Failed))
}

pub fn start_date() -> Option<DateFilter> {
    DateFilter::parse(START_DATE)
}

pub fn end_date() -> Option<DateFilter> {
    DateFilter::parse(END_DATE)
}

pub fn run_id() -> String {
    RUN_ID.into()
}

pub fn run_filter() -> Option<String> {
    Some(RUN_ID.into())
}

pub fn validation_id() -> String {
    VALIDATION_ID.into()
}

/// `*`: whatever the run's version, so the example update applies as sent.
pub fn if_match() -> Option<String> {
    Some("*".into())
}

/// Short, so Try it out on a live run answers soon.
pub fn wait_seconds() -> i64 {
    5
}

pub fn zero() -> i64 {
    0
}

pub fn no() -> bool {
    false
}

pub fn webhook_id() -> String {
    WEBHOOK_ID.into()
}

pub fn delivery_id() -> String {
    DELIVERY_ID.into()
}
