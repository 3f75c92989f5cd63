//! Admin REST v2 routes and models. Not built yet (issue 6).
