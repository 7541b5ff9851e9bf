//! mal
