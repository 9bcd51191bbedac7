<?php
/**
 * Silence is golden: no directory listings.
 */

defined( 'ABSPATH' ) || exit;
