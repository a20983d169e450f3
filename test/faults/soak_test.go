package faults

import (
	"os"
	"runtime"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The soak run is not part of CI: FAULTS_SOAK=1 make test-faults.
var _ = Describe("Resource hygiene", func() {
	It("does not grow goroutines or heap over 10 minutes of rotations every few seconds", func() {
		if os.Getenv("FAULTS_SOAK") == "" {
			Skip("set FAULTS_SOAK=1 for the 10-minute soak run")
		}
		d := 10 * time.Minute
		if s := os.Getenv("FAULTS_SOAK_DURATION"); s != "" {
			var err error
			d, err = time.ParseDuration(s)
			Expect(err).NotTo(HaveOccurred())
		}
		mgr := startManager("soak")
		defer stopManager(mgr)
		f := newFixture(newNamespace(), newVault(nil), 20, 2)
		f.expectCurrent(30 * time.Second)

		sample := func() (int, uint64) {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return runtime.NumGoroutine(), ms.HeapInuse
		}
		g0, h0 := sample()
		GinkgoWriter.Printf("soak start: %d goroutines, heap in use %.1f MiB\n", g0, float64(h0)/(1<<20))
		AddReportEntry("soak start", g0, h0)
		end := time.Now().Add(d)
		nextReport := time.Now().Add(time.Minute)
		rounds := 0
		for time.Now().Before(end) {
			f.rotate()
			f.forceSyncAll()
			f.expectCurrent(30 * time.Second)
			rounds++
			if time.Now().After(nextReport) {
				g, h := sample()
				GinkgoWriter.Printf("soak %s: %d rounds, %d goroutines, heap in use %.1f MiB\n",
					time.Until(end).Round(time.Second), rounds, g, float64(h)/(1<<20))
				nextReport = nextReport.Add(time.Minute)
			}
			time.Sleep(3 * time.Second) // the pace of rotations, not a synchronisation
		}
		g1, h1 := sample()
		GinkgoWriter.Printf("soak end: %d rounds, %d goroutines (start %d), heap in use %.1f MiB (start %.1f MiB)\n",
			rounds, g1, g0, float64(h1)/(1<<20), float64(h0)/(1<<20))
		AddReportEntry("soak end", rounds, g1, h1)
		Expect(g1).To(BeNumerically("<=", g0+20), "goroutines do not grow")
		Expect(h1).To(BeNumerically("<=", 2*h0+16<<20), "heap does not grow")
	})
})
