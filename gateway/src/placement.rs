//! Choosing the ws-handler for a new WebSocket: the registry's connection counts are only
//! refreshed now and then, so the connections placed since the last refresh are counted
//! too, and a burst spreads over the handlers instead of landing on the one that looked
//! least loaded.

use std::collections::HashMap;

use uuid::Uuid;
use wire::api::wsmanager::HandlerInfo;

/// The live ws-handlers as last fetched, and the placements made since.
#[derive(Debug, Default)]
pub struct Placement {
    handlers: Vec<HandlerInfo>,
    /// Connections placed on each handler since `handlers` was fetched.
    placed: HashMap<Uuid, u64>,
    /// Where the search for the least loaded handler starts, so that ties take turns.
    turn: usize,
}

impl Placement {
    /// Replaces the handler list with a fresh one from the registry; the placements
    /// counted so far are in its connection counts now, so they start again from zero.
    pub fn refresh(&mut self, handlers: Vec<HandlerInfo>) {
        self.handlers = handlers;
        self.placed.clear();
    }

    /// Whether there is no handler to place on.
    pub fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }

    /// Places one connection: the handlers in the order to try them. The first has the
    /// lowest registered connections plus placements since the refresh (among equals, the
    /// next in turn) and is counted as placed; the others follow by the same load, as
    /// fallbacks should it be unreachable.
    pub fn place(&mut self) -> Vec<HandlerInfo> {
        let count = self.handlers.len();
        if count == 0 {
            return Vec::new();
        }
        let start = self.turn % count;
        self.turn = self.turn.wrapping_add(1);
        let mut order: Vec<(u64, usize)> = self
            .handlers
            .iter()
            .enumerate()
            .map(|(index, handler)| (self.load(handler), (index + count - start) % count))
            .collect();
        order.sort_unstable();
        let ordered: Vec<HandlerInfo> = order
            .into_iter()
            .map(|(_, distance)| self.handlers[(distance + start) % count].clone())
            .collect();
        *self.placed.entry(ordered[0].handler_id).or_default() += 1;
        ordered
    }

    fn load(&self, handler: &HandlerInfo) -> u64 {
        handler.connections + self.placed.get(&handler.handler_id).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler(connections: u64) -> HandlerInfo {
        HandlerInfo {
            handler_id: Uuid::new_v4(),
            url: format!("http://127.0.0.1:{}", 9000 + connections),
            connections,
            last_seen: time::OffsetDateTime::now_utc(),
        }
    }

    /// How many of `n` placements each handler receives, in the order of `handlers`.
    fn spread(placement: &mut Placement, handlers: &[HandlerInfo], n: usize) -> Vec<usize> {
        let mut counts = vec![0; handlers.len()];
        for _ in 0..n {
            let chosen = placement.place()[0].handler_id;
            let index = handlers
                .iter()
                .position(|h| h.handler_id == chosen)
                .expect("a known handler");
            counts[index] += 1;
        }
        counts
    }

    #[test]
    fn a_burst_between_two_refreshes_splits_evenly_over_two_handlers() {
        let handlers = vec![handler(0), handler(0)];
        let mut placement = Placement::default();
        placement.refresh(handlers.clone());
        let counts = spread(&mut placement, &handlers, 1000);
        assert_eq!(counts.iter().sum::<usize>(), 1000);
        assert!(
            counts[0].abs_diff(counts[1]) <= 1,
            "uneven split: {counts:?}"
        );
    }

    #[test]
    fn an_odd_burst_over_handlers_with_equal_load_differs_by_at_most_one() {
        let handlers = vec![handler(4), handler(4), handler(4)];
        let mut placement = Placement::default();
        placement.refresh(handlers.clone());
        let counts = spread(&mut placement, &handlers, 1001);
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(max - min <= 1, "uneven split: {counts:?}");
    }

    #[test]
    fn a_handler_with_more_registered_connections_receives_fewer() {
        let handlers = vec![handler(30), handler(0)];
        let mut placement = Placement::default();
        placement.refresh(handlers.clone());
        let counts = spread(&mut placement, &handlers, 100);
        // 130 connections in all: 65 each, so 35 new ones on the busy handler.
        assert_eq!(counts, vec![35, 65]);
    }

    #[test]
    fn a_refresh_starts_the_placement_count_again() {
        let handlers = vec![handler(0), handler(0)];
        let mut placement = Placement::default();
        placement.refresh(handlers.clone());
        spread(&mut placement, &handlers, 10);
        // The registry now reports the first handler busy and the second idle.
        let mut refreshed = handlers.clone();
        refreshed[0].connections = 10;
        refreshed[1].connections = 0;
        placement.refresh(refreshed);
        let counts = spread(&mut placement, &handlers, 10);
        assert_eq!(counts, vec![0, 10]);
    }

    #[test]
    fn the_fallbacks_follow_the_chosen_handler_by_load() {
        let handlers = vec![handler(5), handler(1), handler(3)];
        let mut placement = Placement::default();
        placement.refresh(handlers.clone());
        let order: Vec<u64> = placement.place().iter().map(|h| h.connections).collect();
        assert_eq!(order, vec![1, 3, 5]);
    }

    #[test]
    fn with_no_handler_nothing_is_placed() {
        let mut placement = Placement::default();
        assert!(placement.is_empty());
        assert!(placement.place().is_empty());
    }
}
