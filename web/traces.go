package web

import "github.com/gin-gonic/gin"

// traceRoutes registers KTrace: span ingest, the trace API and the trace
// pages.
func (s *Server) traceRoutes(_ *gin.Engine, _, ui *gin.RouterGroup) {
	ui.GET("/traces", s.comingPage(comingTraces))
}
