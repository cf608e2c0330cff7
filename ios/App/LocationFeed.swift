// The newest location fix for frames pushed to the scanner, from CLLocationManager (read on the camera queue).
import CoreLocation
import Foundation
import PlatewatchFFI

final class LocationFeed: NSObject, CLLocationManagerDelegate, @unchecked Sendable {
    private let manager = CLLocationManager()
    private let lock = NSLock()
    private var last: GpsPosition?

    /// Create on the main thread (CLLocationManager delivers to the creating thread's run loop).
    override init() {
        super.init()
        manager.delegate = self
        manager.desiredAccuracy = kCLLocationAccuracyBest
    }

    func start() {
        manager.requestWhenInUseAuthorization()
        manager.startUpdatingLocation()
    }

    func stop() {
        manager.stopUpdatingLocation()
    }

    /// The newest fix if it is under 30 s old.
    func latest() -> GpsPosition? {
        lock.lock()
        defer { lock.unlock() }
        guard let fix = last else { return nil }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return now - fix.atMs < 30_000 ? fix : nil
    }

    func locationManager(_ manager: CLLocationManager, didUpdateLocations locations: [CLLocation]) {
        guard let l = locations.last, l.horizontalAccuracy >= 0 else { return }
        let fix = GpsPosition(
            lat: l.coordinate.latitude,
            lon: l.coordinate.longitude,
            accuracyM: Float(l.horizontalAccuracy),
            atMs: Int64(l.timestamp.timeIntervalSince1970 * 1000)
        )
        lock.lock()
        last = fix
        lock.unlock()
    }

    func locationManager(_ manager: CLLocationManager, didFailWithError error: Error) {
        // No fix: frames go without GPS until one arrives.
    }
}
