//! Property tests: the forecaster, the CSV parser and the policy never panic, whatever they are given.

use mcpulse_scaler::forecast::{
    ForecastConfig, forecast, parse_series_csv, prediction_trustworthy, predictive_replicas,
};
use mcpulse_scaler::sizing::PodSizing;
use proptest::prelude::*;

/// Any f64 at all, with NaN, infinities, negatives, zero and subnormals well represented.
fn any_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.0f64..1e6,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(0.0),
        1 => any::<f64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn forecast_never_panics(
        history in prop::collection::vec(any_value(), 0..160),
        horizon in 1usize..8,
        folds in 1usize..3,
    ) {
        let config = ForecastConfig { horizon, backtest_folds: folds, min_history: 8, ..ForecastConfig::default() };
        if let Ok(f) = forecast(&history, &config) {
            prop_assert_eq!(f.points.len(), horizon);
            prop_assert!(f.points.iter().all(|p| p.lower <= p.mean && p.mean <= p.upper && p.lower >= 0.0));
            let _ = predictive_replicas(&f, horizon, &PodSizing::Capacity { per_pod: 10.0 }, 1, 50);
        }
    }

    #[test]
    fn finite_non_negative_history_always_forecasts(
        history in prop::collection::vec(0.0f64..1e9, 60..160),
    ) {
        let f = forecast(&history, &ForecastConfig::default());
        prop_assert!(f.is_ok(), "{:?}", f.err());
    }

    #[test]
    fn csv_parser_never_panics(text in "[0-9a-zA-Z:,.\\- \n\"]{0,400}") {
        let _ = parse_series_csv(&text);
    }

    #[test]
    fn trust_never_panics(errors in prop::collection::vec(any_value(), 0..10), threshold in any_value()) {
        let _ = prediction_trustworthy(&errors, 100, 48, threshold);
    }
}
