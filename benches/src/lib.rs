//! vitals-benches (under construction).
