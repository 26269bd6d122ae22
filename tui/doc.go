// Package tui is anetop's terminal console: a bubbletea program that shows a
// training run live — header, loss chart, kernel and CPU-phase table,
// utilisation and compile-budget gauges, the latest sample and a status
// line — and turns keys into engine commands.
//
// It renders what the engine already computed and does no arithmetic on
// tensors. It never slows the engine down: it polls an event Source on a
// tick (twice a second), draining a subscription that drops events when
// full, so a busy terminal costs the training loop nothing. Commands go
// through a Controller, a seam that lets cmd/anetop wrap the engine's
// Runner (for example to turn Restart into checkpoint + exec) and lets
// tests use a fake.
package tui
