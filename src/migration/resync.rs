//! A resync of a migration's deployed domains: their recorded trees and
//! deployed databases brought up to date at once, no records written.

use super::content::copy_trees;
use super::databases::{copy_databases, DbWork};
use super::report::ObjectOutcome;
use super::run::{database_errors, Env, Update};
use super::status::{ObjectKind, StatusError};

/// A resync: the recorded trees of each deployed domain and its deployed
/// databases, brought up to date at once (the databases by catching up);
/// no records are written.
pub(super) async fn resync(env: &Env) -> Vec<StatusError> {
    let mut completed = 1;
    let mut errors = Vec::new();
    for name in env.prepared.plan.domain_names() {
        let trees = env.prepared.trees_for(&name);
        let planned = env.prepared.databases_of(&name);
        let databases = async {
            match env.prepared.domain(&name) {
                Some(record) => copy_databases(env, record, &planned, DbWork::CatchUp).await,
                None => Vec::new(),
            }
        };
        let ((entries, copied), databases) =
            futures_util::future::join(copy_trees(env, &name, None, &trees), databases).await;
        let notes: Vec<String> = env
            .prepared
            .resync_notes
            .iter()
            .filter(|(d, _)| *d == name)
            .map(|(_, n)| n.clone())
            .collect();
        env.change_object(ObjectKind::Domain, &name, |o| {
            o.trees = entries;
            o.databases = databases.iter().map(|(entry, _)| entry.clone()).collect();
            o.warnings.extend(notes);
        });
        let mut problems: Vec<String> = copied.err().into_iter().collect();
        problems.extend(database_errors(&mut errors, &databases));
        if problems.is_empty() {
            env.change_object(ObjectKind::Domain, &name, |o| {
                o.outcome = ObjectOutcome::Deployed
            });
        } else {
            env.fail(&mut errors, ObjectKind::Domain, &name, problems.join("; "));
        }
        completed += (trees.len() + planned.len()) as u64;
        env.tell(Update::Steps(completed)).await;
    }
    errors
}
