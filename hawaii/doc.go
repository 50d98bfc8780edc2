// Package hawaii promotes builds: CI reports each image build, the build is
// tested in a throwaway alpha environment and in QA, and a person promotes
// it to prod after reviewing what changed.
//
// This part of the package holds the model and its storage: Build (an
// immutable CI report with its changelog), StageRecord (status and steps of
// alpha, qa and prod for one build, with test counts), TestCase (one JUnit
// test case of a stage's run, parsed by ParseJUnit), Event (one entry of the
// durable audit log), Lock and Pin (what holds an environment still),
// Promotion (one build entering one environment) and Store, implemented on
// the SQL store (SQLite or MySQL/MariaDB) by SQLStore and in memory by
// MemoryStore. The Pipeline keeps nothing of its own that a restart or a
// new leader would need: it reads and writes locks, pins and promotions
// through the Store. A promotion is run by one replica (Promotion.Runner):
// the pipeline leader fails the automatic ones a previous leader left, and
// a Sweeper on every replica fails, with its stage and one audit event,
// any promotion whose replica's etcd key (signalman.Presence) has been
// gone longer than the grace period. VerifySignature checks the HMAC signatures CI
// webhooks carry (GitHub's X-Hub-Signature-256 and Standard Webhooks).
//
// The package does not serve HTTP (web does) and does not know which
// services exist: callers check a report's service against the registry
// and the configured pipelines before calling Report.
//
// Use: validate a Build with Validate, store it with Store.Report (a
// repeated GUID returns the stored build unchanged), record what happened
// with Store.Audit, and let the pipeline set stage status with SetStage and
// add test results with AddResults.
package hawaii
