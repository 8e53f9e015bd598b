//! vitals-std (under construction).
