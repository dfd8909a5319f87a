import os
print('remote code')
