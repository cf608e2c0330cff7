// The newest location fix for frames pushed to the scanner (GPS, else network), from LocationManager.
package app.platewatch.app

import android.Manifest
import android.annotation.SuppressLint
import android.content.Context
import android.content.pm.PackageManager
import android.location.Location
import android.location.LocationListener
import android.location.LocationManager
import android.os.Bundle
import android.os.Looper
import androidx.core.content.ContextCompat
import app.platewatch.ffi.GpsPosition

class LocationFeed(private val context: Context) : LocationListener {
    private val manager = context.getSystemService(LocationManager::class.java)

    @Volatile
    private var last: GpsPosition? = null

    /** The newest fix if it is under 30 s old (called on the camera's analysis thread). */
    fun latest(): GpsPosition? = last?.takeIf { System.currentTimeMillis() - it.atMs < MAX_AGE_MS }

    /** Starts updates if a location permission is granted (GPS needs the precise one); harmless to call again. */
    @SuppressLint("MissingPermission")
    fun start() {
        val fine = granted(Manifest.permission.ACCESS_FINE_LOCATION)
        if (manager == null || !(fine || granted(Manifest.permission.ACCESS_COARSE_LOCATION))) return
        manager.removeUpdates(this)
        val providers = if (fine) {
            listOf(LocationManager.GPS_PROVIDER, LocationManager.NETWORK_PROVIDER)
        } else {
            listOf(LocationManager.NETWORK_PROVIDER)
        }
        for (provider in providers) {
            if (provider in manager.allProviders) {
                manager.requestLocationUpdates(provider, 1_000L, 0f, this, Looper.getMainLooper())
            }
        }
    }

    private fun granted(permission: String) =
        ContextCompat.checkSelfPermission(context, permission) == PackageManager.PERMISSION_GRANTED

    fun stop() {
        manager?.removeUpdates(this)
    }

    override fun onLocationChanged(location: Location) {
        // Prefer GPS: a network fix replaces it only when the GPS fix has gone stale.
        val current = last
        if (location.provider != LocationManager.GPS_PROVIDER && current != null &&
            System.currentTimeMillis() - current.atMs < MAX_AGE_MS / 3
        ) return
        last = GpsPosition(
            lat = location.latitude,
            lon = location.longitude,
            accuracyM = if (location.hasAccuracy()) location.accuracy else null,
            atMs = location.time,
        )
    }

    // Required on API < 30, where these are abstract.
    override fun onProviderEnabled(provider: String) {}
    override fun onProviderDisabled(provider: String) {}
    @Deprecated("Deprecated in API 29")
    override fun onStatusChanged(provider: String?, status: Int, extras: Bundle?) {}

    private companion object {
        const val MAX_AGE_MS = 30_000L
    }
}
