//! Reading a topic's compacted view for a read-compacted subscription: compacted entries up
//! to the horizon (with the entries passed over counted as acknowledged), then the topic's;
//! redeliveries and acknowledgements of compacted entries from ledgers already trimmed.

use super::*;

use super::actor::Actor;

/// Where a compacted read starts for a cursor at `mark_delete`: everything the compacted
/// ledger holds if nothing was acknowledged yet, else right after it.
pub(in crate::subscription_actor) fn compacted_start(mark_delete: Position) -> Position {
    if mark_delete.entry_id < 0 {
        Position::new(-1, -1)
    } else {
        Position::new(mark_delete.ledger_id, mark_delete.entry_id + 1)
    }
}

/// The position right below `p` in position order (an entry there or not).
fn below(p: Position) -> Position {
    Position::new(p.ledger_id, p.entry_id - 1)
}

/// The compacted view, for a read-compacted subscription once the topic was compacted.
pub(super) async fn compacted_view(
    read_compacted: bool,
    topic: &TopicView,
    ml: &ManagedLedger,
) -> Result<Option<Arc<CompactedLedger>>, MlError> {
    if !read_compacted {
        return Ok(None);
    }
    let limit = topic.max_frame_size.saturating_mul(16);
    topic.compacted.view(ml, limit).await
}

/// Entries to redeliver: for a read-compacted subscription, those within the compacted horizon
/// come from the compacted ledger (the topic may no longer hold them).
pub(super) async fn read_positions(
    read_compacted: bool,
    topic: &TopicView,
    ml: &ManagedLedger,
    positions: &[Position],
) -> Result<Vec<(Position, Bytes)>, MlError> {
    let Some(view) = compacted_view(read_compacted, topic, ml).await? else {
        return ml.read_positions(positions).await;
    };
    let (compacted, rest): (Vec<Position>, Vec<Position>) =
        positions.iter().partition(|p| **p <= view.horizon);
    let mut entries = view.read_positions(&compacted).await?;
    entries.extend(ml.read_positions(&rest).await?);
    entries.sort_by_key(|(p, _)| *p);
    Ok(entries)
}

impl Actor {
    /// Acks of compacted entries from ledgers the topic no longer holds name no entry of the
    /// topic: recorded as positions. A batch-index ack waits for the whole entry's.
    pub(super) fn ack_compacted(
        &mut self,
        layout: &LedgerLayout,
        kind: AckKind,
        messages: &[AckedMessage],
        mut report: AckReport,
    ) -> AckReport {
        let Some(horizon) = self.compacted_horizon.filter(|_| self.read_compacted) else {
            return report;
        };
        report.unknown.retain(|p| {
            let whole = messages
                .iter()
                .any(|m| m.position == *p && m.ack_set.is_none());
            if *p > horizon || !whole {
                return true;
            }
            let after = match kind {
                AckKind::Cumulative => self.subscription.cursor().mark_delete(),
                AckKind::Individual => below(*p),
            };
            if self.subscription.ack_skipped(layout, after, *p) {
                self.dirty = true;
            }
            false
        });
        report
    }

    /// Up to `max` entries from `from`: for a read-compacted subscription, the compacted
    /// ledger's entries while `from` is within its horizon — the entries it passes over were
    /// superseded and count as acknowledged — then the topic's.
    pub(super) async fn read(
        &mut self,
        layout: &LedgerLayout,
        from: Position,
        max: usize,
    ) -> Result<Vec<(Position, Bytes)>, MlError> {
        let view = compacted_view(self.read_compacted, &self.topic, &self.ml).await?;
        self.compacted_horizon = view.as_ref().map(|v| v.horizon);
        let Some(view) = view.filter(|v| from <= v.horizon) else {
            return self.ml.read(from, max).await;
        };
        let first_retained = layout
            .first_position()
            .unwrap_or_else(|| layout.end_position());
        let start = if from <= first_retained {
            self.compacted_next.min(from)
        } else {
            from
        };
        let entries = view.read_from(start, max).await?;
        let Some((last, _)) = entries.last() else {
            // Past the compacted ledger's last entry: the topic goes on after the horizon.
            self.skip_compacted(layout, below(start), view.horizon);
            self.compacted_next = view.horizon.successor();
            return self.ml.read(layout.next(view.horizon), max).await;
        };
        let mut after = below(start);
        for (p, _) in &entries {
            self.skip_compacted(layout, after, below(*p));
            after = *p;
        }
        self.compacted_next = last.successor();
        Ok(entries)
    }

    /// A read-compacted subscription at the start of what the topic holds may have compacted
    /// entries before it, in ledgers trimmed since: its first read starts at them.
    pub(super) async fn rewind_to_compacted(&mut self) {
        let view = match compacted_view(self.read_compacted, &self.topic, &self.ml).await {
            Ok(view) => view,
            Err(e) => {
                tracing::warn!(subscription = self.name, error = %e, "loading the compacted view failed");
                return;
            }
        };
        if let Some(first) = view.and_then(|v| v.first_at_or_after(self.compacted_next)) {
            self.subscription.rewind(first);
        }
    }

    pub(super) fn skip_compacted(
        &mut self,
        layout: &LedgerLayout,
        after: Position,
        through: Position,
    ) {
        if self.subscription.ack_skipped(layout, after, through) {
            self.dirty = true;
        }
    }
}
