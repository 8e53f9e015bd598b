//! vitals-tests (under construction).
