// Package uplot is the chart library of kernelgate's pages: uPlot
// (https://github.com/leeoniya/uPlot, MIT, see LICENSE), its built files
// vendored at a pinned version and embedded, so that the dashboard serves
// them itself and the bench report inlines them; no page fetches anything.
//
// To update: `internal/uplot/update.sh VERSION` fetches the release with
// `npm pack`, checks its integrity against the registry's, and replaces the
// files, the LICENSE and Version; then look at the dashboard and a report.
package uplot

import _ "embed"

// Version is the vendored release; TestVersionMatchesTheFiles keeps it
// honest.
const Version = "1.6.32"

// JS is uPlot's browser build (an IIFE defining the global uPlot).
//
//go:embed uPlot.iife.min.js
var JS string

// CSS is uPlot's stylesheet.
//
//go:embed uPlot.min.css
var CSS string

// License is uPlot's licence, which must travel with JS and CSS.
//
//go:embed LICENSE
var License string
