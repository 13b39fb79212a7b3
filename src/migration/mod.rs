//! A migration: what a client asks (`request`), its plan and status as
//! plain values (`plan`, `status`, `summary`), the refusals of the engine
//! (`refusal`), the validation `start` runs before it answers (`prepare`,
//! with its disk guard `space`),
//! and the Migration actor that carries it out (`run`, and `resync`) with its
//! sub-actors for content (`content`) and databases (`databases`), its
//! event log (`events`) and its stop (`stopper`).

pub mod content;
pub mod databases;
pub mod events;
pub mod plan;
pub mod prepare;
pub mod refusal;
pub mod report;
pub mod request;
pub mod resume;
mod resync;
pub mod run;
pub mod space;
pub mod status;
pub mod stopper;
pub mod summary;
