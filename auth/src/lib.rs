//! JWT token authentication and authorization policy. Not built yet (issue 6).
