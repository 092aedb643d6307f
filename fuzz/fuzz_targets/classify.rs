//! Fuzz `classify`: any body must yield messages or an error, never a panic, and respect the batch cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpulse_wire::{MAX_BATCH, MAX_TEXT_BYTES, classify};

fuzz_target!(|body: &[u8]| {
    if let Ok(messages) = classify(body) {
        assert!(!messages.is_empty() && messages.len() <= MAX_BATCH);
        for m in messages {
            assert!(m.method.as_ref().is_none_or(|s| s.len() <= MAX_TEXT_BYTES));
            assert!(
                m.tool_name
                    .as_ref()
                    .is_none_or(|s| s.len() <= MAX_TEXT_BYTES)
            );
        }
    }
});
