//! Applying what a load brought back: each kind of data to the screen it
//! was for, marking the frame dirty only when what is shown changed.

use super::{App, Slot};
use crate::console::msg::{Command, Holds, ListLoad, Load, Loaded};
use crate::console::screens::{
    EndpointDetail, EndpointRow, RetentionStatus, Screen, SearchProgress, WorstEndpoint,
};
use crate::held::Hold;
use crate::model::{AuditEntry, Delivery, Subscription};
use crate::store::{Cursor, DeliveryDetail, EventFanout, MinuteTotals, QueueSummary};

impl App {
    pub(super) fn on_loaded(&mut self, token: u64, result: Result<Loaded, String>) -> Vec<Command> {
        let slot = self.settle(token);
        let loaded = match result {
            Ok(loaded) => {
                if self.db_error.take().is_some() {
                    self.dirty = true;
                }
                loaded
            }
            Err(reason) => {
                self.on_load_failed(slot, reason);
                return Vec::new();
            }
        };
        if slot == Some(Slot::Top)
            && !matches!(loaded, Loaded::Refused(_))
            && let Some(rows) = self.top_list_mut()
        {
            rows.succeed();
        }
        match loaded {
            // Counts for a confirmation are answered whatever screen is on top.
            Loaded::DeadCount {
                endpoint_id,
                label,
                count,
            } => self.ask_to_retry_all_dead(endpoint_id, label, count),
            Loaded::ResumeCheck {
                endpoint,
                held,
                retrying,
            } => self.ask_to_resume(&endpoint, held, retrying),
            Loaded::Marked { asked, rows, holds } => self.ask_to_retry_marked(asked, rows, &holds),
            Loaded::RetryPreview { query, preview } => self.ask_to_retry_filtered(*query, &preview),
            Loaded::RecentTopics(topics) => {
                if let super::Mode::Form(form) = &mut self.mode {
                    form.recent_topics = Some(topics);
                    self.dirty = true;
                }
                Vec::new()
            }
            Loaded::Curl(text) => {
                self.flash(
                    "copied the curl command (OSC 52): shown whole here to copy by hand",
                    false,
                );
                self.clipboard = Some(text.clone());
                self.mode = super::Mode::Copied(text);
                Vec::new()
            }
            Loaded::Breaker(panel) => {
                self.mode = super::Mode::Breaker(panel);
                self.dirty = true;
                Vec::new()
            }
            // Refused counts and re-reads for a question must say why too.
            Loaded::Refused(reason) => self.on_refused(slot, reason),
            // A stale answer: the screen it was for is gone.
            _ if slot.is_none() => Vec::new(),
            Loaded::Header {
                summary,
                dispatchers_alive,
                last_seen_ago,
            } => self.on_header(summary, dispatchers_alive, last_seen_ago),
            Loaded::Overview {
                throughput,
                worst,
                retention,
            } => self.on_overview(throughput, worst, retention),
            Loaded::Deliveries {
                rows,
                older,
                newer,
                how,
                holds,
            } => self.on_deliveries(rows, older, newer, how, holds),
            Loaded::Search {
                rows,
                progress,
                holds,
            } => self.on_search(rows, progress, holds),
            Loaded::Detail { detail, hold } => self.on_detail(*detail, hold),
            Loaded::Event { fanout, holds } => self.on_event(*fanout, holds),
            Loaded::EndpointDetail(detail) => self.on_endpoint_detail(*detail),
            Loaded::Endpoints { rows, complete } => self.on_endpoints(rows, complete),
            Loaded::Subscriptions { rows, complete } => self.on_subscriptions(rows, complete),
            Loaded::Audit {
                rows,
                older,
                append,
            } => self.on_audit(rows, older, append),
        }
    }

    /// The slot that was waiting for `token`, no longer waiting; `None` when
    /// nothing waits for it (it was superseded, or never had a slot).
    fn settle(&mut self, token: u64) -> Option<Slot> {
        let slot = self
            .pending
            .iter()
            .find(|(_, t)| **t == token)
            .map(|(slot, _)| *slot);
        if let Some(slot) = slot {
            self.pending.remove(&slot);
        }
        slot
    }

    /// The database is unreachable: said once on the status line, until a
    /// load succeeds, and in the body of a list that waited for it.
    fn on_load_failed(&mut self, slot: Option<Slot>, reason: String) {
        if slot == Some(Slot::Top)
            && let Some(rows) = self.top_list_mut()
        {
            rows.fail(reason.clone());
            self.dirty = true;
        }
        if self.db_error.as_ref() != Some(&reason) {
            self.db_error = Some(reason);
            self.dirty = true;
        }
    }

    /// What the screen asked for cannot be shown: a list says why in its
    /// body; elsewhere the status line does.
    fn on_refused(&mut self, slot: Option<Slot>, reason: String) -> Vec<Command> {
        if slot == Some(Slot::Top) {
            let refused = match self.top_mut() {
                Screen::Event(s) => Some(&mut s.refused),
                Screen::EndpointDetail(s) => Some(&mut s.refused),
                _ => None,
            };
            if let Some(refused) = refused {
                *refused = Some(reason);
                self.dirty = true;
                return Vec::new();
            }
        }
        match self.top_list_mut() {
            Some(rows) if slot == Some(Slot::Top) => {
                rows.fail(reason);
                self.dirty = true;
            }
            _ => self.flash(reason, true),
        }
        Vec::new()
    }

    fn on_header(
        &mut self,
        summary: QueueSummary,
        dispatchers_alive: usize,
        last_seen_ago: Option<i64>,
    ) -> Vec<Command> {
        // The summary's clock moves on every load; only the counts are news,
        // and the banner's "last seen" only when it reads differently.
        let mut compare = summary.clone();
        compare.now = self.summary.as_ref().map_or(0, |s| s.now);
        let banner_before = self.dispatcher_banner();
        let changed =
            self.summary.as_ref() != Some(&compare) || self.dispatchers_alive != dispatchers_alive;
        self.summary = Some(summary);
        self.dispatchers_alive = dispatchers_alive;
        self.dispatcher_last_seen_ago = last_seen_ago;
        self.dirty |= changed || banner_before != self.dispatcher_banner();
        Vec::new()
    }

    fn on_overview(
        &mut self,
        throughput: Vec<MinuteTotals>,
        worst: Vec<WorstEndpoint>,
        retention: RetentionStatus,
    ) -> Vec<Command> {
        let Screen::Overview(s) = self.top_mut() else {
            return Vec::new();
        };
        let changed =
            !s.loaded || s.throughput != throughput || s.worst != worst || s.retention != retention;
        s.throughput = throughput;
        s.worst = worst;
        s.retention = retention;
        s.loaded = true;
        s.selected = s.selected.min(s.worst.len().saturating_sub(1));
        self.dirty |= changed;
        Vec::new()
    }

    fn on_deliveries(
        &mut self,
        rows: Vec<Delivery>,
        older: Option<Cursor>,
        newer: Option<Cursor>,
        how: ListLoad,
        holds: Holds,
    ) -> Vec<Command> {
        let height = self.body_rows();
        let Screen::Deliveries(s) = self.top_mut() else {
            return Vec::new();
        };
        s.rows.loading = None;
        let held_changed = s.holds != holds;
        s.holds = holds;
        let before = (s.rows.items.clone(), s.rows.selected);
        match how {
            ListLoad::Replace => {
                s.rows.replace(rows, |d| &d.id);
                s.rows.older = older;
                s.rows.newer = None;
            }
            ListLoad::Tail => {
                s.rows.items = rows;
                s.rows.selected = s.rows.items.len().saturating_sub(1);
                s.rows.older = None;
                s.rows.newer = newer;
                s.rows.loaded = true;
            }
            ListLoad::Older => {
                s.rows.items.extend(rows);
                s.rows.older = older;
            }
            ListLoad::Newer => {
                // Rows above the selection push it down, so the cursor
                // stays on the delivery it was on.
                let added = rows.len();
                let mut items = rows;
                items.append(&mut s.rows.items);
                s.rows.items = items;
                s.rows.selected += added;
                s.rows.offset += added;
                s.rows.newer = newer;
            }
        }
        s.rows.scroll_into_view(height);
        let changed =
            before != (s.rows.items.clone(), s.rows.selected) || !s.rows.loaded || held_changed;
        self.dirty |= changed;
        Vec::new()
    }

    fn on_search(
        &mut self,
        rows: Vec<Delivery>,
        progress: SearchProgress,
        holds: Holds,
    ) -> Vec<Command> {
        let height = self.body_rows();
        let Screen::Deliveries(s) = self.top_mut() else {
            return Vec::new();
        };
        s.rows.loading = None;
        s.holds = holds;
        s.rows.loaded = true;
        s.rows.items.extend(rows);
        let done = progress.done;
        let total = s.search.as_ref().map_or(0, |p| p.scanned) + progress.scanned;
        s.search = Some(SearchProgress {
            scanned: total,
            next: progress.next.clone(),
            done,
        });
        // Keep streaming until the screen is full; then on demand.
        let scan_on = (!done && s.rows.items.len() < height).then(|| Load::Search {
            query: s.query.clone(),
            after: progress.next,
        });
        self.dirty = true;
        scan_on
            .map(|load| self.load_top(load))
            .into_iter()
            .collect()
    }

    fn on_detail(&mut self, detail: DeliveryDetail, hold: Option<Hold>) -> Vec<Command> {
        let Screen::Detail(s) = self.top_mut() else {
            return Vec::new();
        };
        let changed = s.detail.as_ref() != Some(&detail) || s.hold != hold;
        s.detail = Some(detail);
        s.hold = hold;
        self.dirty |= changed;
        Vec::new()
    }

    fn on_event(&mut self, fanout: EventFanout, holds: Holds) -> Vec<Command> {
        let Screen::Event(s) = self.top_mut() else {
            return Vec::new();
        };
        let changed = s.fanout.as_ref() != Some(&fanout) || s.holds != holds || s.refused.is_some();
        s.refused = None;
        s.selected = s.selected.min(fanout.deliveries.len().saturating_sub(1));
        s.fanout = Some(fanout);
        s.holds = holds;
        self.dirty |= changed;
        Vec::new()
    }

    fn on_endpoint_detail(&mut self, detail: EndpointDetail) -> Vec<Command> {
        let Screen::EndpointDetail(s) = self.top_mut() else {
            return Vec::new();
        };
        let changed = s.detail.as_ref() != Some(&detail) || s.refused.is_some();
        s.selected = s.selected.min(detail.causes(s.day).len().saturating_sub(1));
        s.label = crate::console::format::endpoint_label(&detail.endpoint);
        s.detail = Some(detail);
        s.refused = None;
        self.dirty |= changed;
        Vec::new()
    }

    fn on_endpoints(&mut self, rows: Vec<EndpointRow>, complete: bool) -> Vec<Command> {
        let Screen::Endpoints(s) = self.top_mut() else {
            return Vec::new();
        };
        s.rows.loading = None;
        let changed = !s.rows.loaded || s.rows.items != rows;
        s.rows.replace(rows, |r| &r.endpoint.id);
        self.finish_list(changed, complete)
    }

    fn on_subscriptions(&mut self, rows: Vec<Subscription>, complete: bool) -> Vec<Command> {
        let Screen::Subscriptions(s) = self.top_mut() else {
            return Vec::new();
        };
        s.rows.loading = None;
        let changed = !s.rows.loaded || s.rows.items != rows;
        s.rows.replace(rows, |r| &r.id);
        self.finish_list(changed, complete)
    }

    /// A list's rows are in (`changed`: they differ from what was shown);
    /// when only the first of them were read, the load that reads them all.
    fn finish_list(&mut self, changed: bool, complete: bool) -> Vec<Command> {
        self.dirty |= changed;
        if complete {
            return Vec::new();
        }
        self.top_refresh(true)
            .map(|load| self.load_top(load))
            .into_iter()
            .collect()
    }

    fn on_audit(
        &mut self,
        rows: Vec<AuditEntry>,
        older: Option<Cursor>,
        append: bool,
    ) -> Vec<Command> {
        let Screen::Audit(s) = self.top_mut() else {
            return Vec::new();
        };
        s.rows.loading = None;
        let changed = append || !s.rows.loaded || s.rows.items != rows;
        if append {
            s.rows.items.extend(rows);
            s.rows.loaded = true;
        } else {
            s.rows.replace(rows, |r| &r.id);
        }
        s.rows.older = older;
        self.dirty |= changed;
        Vec::new()
    }
}
