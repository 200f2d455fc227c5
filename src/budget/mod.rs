//! STUB: budgets (owned by the budgets work).
