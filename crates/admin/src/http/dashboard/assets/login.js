// The server redirects a failed login to /dashboard/login?failed=1; say so next to the field.
'use strict';
document.addEventListener('DOMContentLoaded', () => {
  if (new URLSearchParams(window.location.search).get('failed') === '1') {
    document.getElementById('failed').hidden = false;
  }
  document.getElementById('token').focus();
});
