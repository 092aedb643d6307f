//! Holding predictive recommendations through the scale-down stabilization window.
//!
//! Prediction is combined as `max(reactive, predictive)` after the engine's `behavior`, so the engine never sees
//! it: without a hold, capacity added ahead of a forecast would go the first sync the forecast fell or stopped,
//! and a forecast that moves every step would move the target with it. The hold treats predictions as the
//! engine treats its own recommendations on the way down: the highest of the window stands.

use std::collections::VecDeque;
use std::time::Duration;

use crate::time::Timestamp;

/// The predictions of the last scale-down window, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PredictionHold {
    recent: VecDeque<(Timestamp, i32)>,
}

impl PredictionHold {
    /// Records `predicted` (when this sync has a prediction) at `now` and returns the highest prediction made
    /// within `window` before `now`, if any.
    pub(crate) fn hold(
        &mut self,
        predicted: Option<i32>,
        now: Timestamp,
        window: Duration,
    ) -> Option<i32> {
        let cutoff = now.minus(window);
        while self.recent.front().is_some_and(|(at, _)| *at < cutoff) {
            self.recent.pop_front();
        }
        if let Some(replicas) = predicted {
            self.recent.push_back((now, replicas));
        }
        self.recent.iter().map(|(_, replicas)| *replicas).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_prediction_of_the_window_stands() {
        let window = Duration::from_secs(300);
        let at = |secs: i64| Timestamp::from_millis(secs * 1000);
        let mut hold = PredictionHold::default();
        // (seconds, this sync's prediction, held, why)
        let steps = [
            (0, Some(5), Some(5), "a first prediction holds itself"),
            (
                60,
                Some(3),
                Some(5),
                "a lower one does not release the higher within the window",
            ),
            (
                120,
                None,
                Some(5),
                "a sync without a prediction keeps the window's",
            ),
            (
                300,
                None,
                Some(5),
                "the window still reaches the first prediction, exactly",
            ),
            (
                301,
                None,
                Some(3),
                "past it the first goes, the second stands",
            ),
            (
                361,
                Some(2),
                Some(2),
                "and then only what is left in the window",
            ),
            (
                700,
                None,
                None,
                "with nothing in the window nothing is held",
            ),
        ];
        for (secs, predicted, held, why) in steps {
            assert_eq!(hold.hold(predicted, at(secs), window), held, "{why}");
        }
        assert_eq!(
            PredictionHold::default().hold(Some(4), at(0), Duration::ZERO),
            Some(4),
            "a zero window holds only this sync's prediction"
        );
    }
}
