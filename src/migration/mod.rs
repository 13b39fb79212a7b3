//! Migrations as plain values: their status as clients see it. The
//! Migration actor and its plan arrive with the migration engine.

pub mod plan;
pub mod request;
pub mod status;
