//! Sequences: a copied sequence is set where the source's stands and
//! checked against it, whole.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::copy::{on_target, DbJob};
use super::rows::{self, TableKind};
use super::{ident, DbError};

/// A sequence's state: next_not_cached_value, minimum_value,
/// maximum_value, start_value, increment, cache_size, cycle_option,
/// cycle_count.
type SequenceRow = (i64, i64, i64, i64, i64, u64, u8, i64);

const SEQUENCE_ROW: &str =
    "SELECT next_not_cached_value, minimum_value, maximum_value, start_value, \
     increment, cache_size, cycle_option, cycle_count FROM ";

/// Sets every sequence of database `into` on the target where the
/// source's stands (its next value and how many cycles it did), then
/// checks its whole state against the source's.
pub(super) async fn copy(
    job: &DbJob,
    dst: &mut Conn,
    src: &mut Conn,
    tables: &[rows::Table],
    into: &str,
) -> Result<(), DbError> {
    for t in tables.iter().filter(|t| t.kind == TableKind::Sequence) {
        let name = |db: &str| format!("{}.{}", ident(db), ident(&t.name));
        let on_source: Option<SequenceRow> = src
            .query_first(format!("{SEQUENCE_ROW}{}", name(&job.name)))
            .await
            .map_err(|e| {
                DbError::sql(format!("cannot read sequence {} on the source", t.name), e)
            })?;
        let Some(state) = on_source else { continue };
        dst.query_drop(format!(
            "SELECT SETVAL({}, {}, 0, {})",
            name(into),
            state.0,
            state.7
        ))
        .await
        .map_err(on_target(job, &format!("cannot set sequence {}", t.name)))?;
        let on_target: Option<SequenceRow> = dst
            .query_first(format!("{SEQUENCE_ROW}{}", name(into)))
            .await
            .map_err(on_target(job, &format!("cannot read sequence {}", t.name)))?;
        if on_target != Some(state) {
            return Err(DbError::Uncarriable {
                table: t.name.clone(),
                why: format!(
                    "the sequence stands at {:?} on the source but {:?} on {} after it was set",
                    state, on_target, job.target_label
                ),
            });
        }
    }
    Ok(())
}
