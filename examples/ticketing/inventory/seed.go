package inventory

import (
	"time"

	"github.com/kplane/kplane/examples/ticketing/api"
)

// FlashSaleEventID is the demo event whose sale opening is the traffic
// spike of the demo: a big venue, cheap tickets, everyone at once.
const FlashSaleEventID = "flash-sale"

// DemoEvents are the events a new demo database starts with, dated from
// now so that they are always upcoming.
func DemoEvents(now time.Time) []api.Event {
	day := now.UTC().Truncate(24 * time.Hour)
	at := func(days, hour int) time.Time { return day.AddDate(0, 0, days).Add(time.Duration(hour) * time.Hour) }
	return []api.Event{
		{ID: FlashSaleEventID, Name: "Mayday Stadium Tour (flash sale)", Venue: "Taipei Dome", StartsAt: at(30, 19), Price: 2800_00, Capacity: 5000},
		{ID: "jazz-night", Name: "Jazz Night at the Blue Note", Venue: "Blue Note", StartsAt: at(3, 21), Price: 45_00, Capacity: 200},
		{ID: "city-marathon-expo", Name: "City Marathon Expo", Venue: "Expo Hall 1", StartsAt: at(10, 9), Price: 0, Capacity: 20000},
		{ID: "opera-gala", Name: "Opera Gala", Venue: "National Theater", StartsAt: at(14, 20), Price: 120_00, Capacity: 800},
		{ID: "ktv-marathon", Name: "24-hour KTV Marathon", Venue: "Party World", StartsAt: at(7, 12), Price: 25_00, Capacity: 60},
	}
}
