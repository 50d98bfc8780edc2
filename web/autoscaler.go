package web

import "github.com/gin-gonic/gin"

// autoscalerRoutes registers the autoscaler: policies, decisions, manual
// scale and the autoscaler page.
func (s *Server) autoscalerRoutes(_ *gin.Engine, _, ui *gin.RouterGroup) {
	ui.GET("/autoscaler", s.comingPage(comingAutoscaler))
}
