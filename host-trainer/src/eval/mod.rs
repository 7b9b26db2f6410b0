//! Honest evaluation: metrics on a named split (PrivateTest by default), the confusion matrix
//! as a table, JSON and PNG heat map, and training curves.

pub mod metrics;
pub mod plot;
pub mod predict;
