#!/bin/bash
# scripts/backup-database.sh

set -e

BACKUP_BUCKET="s3://i2s-backups/database"
TIMESTAMP=$(date +%Y%m%d_%H%M%S)
BACKUP_FILE="i2s_production_backup_${TIMESTAMP}.sql"

# Create database backup
pg_dump \
  --host=$DB_HOST \
  --port=$DB_PORT \
  --username=$DB_USER \
  --dbname=$DB_NAME \
  --verbose \
  --clean \
  --no-owner \
  --no-privileges \
  --compress=9 \
  --format=custom \
  --file=/tmp/$BACKUP_FILE

# Encrypt backup
gpg --cipher-algo AES256 --compress-algo 1 --symmetric --output /tmp/${BACKUP_FILE}.gpg /tmp/$BACKUP_FILE

# Upload to S3
aws s3 cp /tmp/${BACKUP_FILE}.gpg ${BACKUP_BUCKET}/${BACKUP_FILE}.gpg

# Cleanup local files
rm -f /tmp/$BACKUP_FILE /tmp/${BACKUP_FILE}.gpg

# Verify backup
aws s3 ls ${BACKUP_BUCKET}/${BACKUP_FILE}.gpg

echo "Database backup completed: ${BACKUP_FILE}.gpg"

# Retain only last 30 days of backups
aws s3 ls ${BACKUP_BUCKET}/ | while read -r line; do
    backup_date=$(echo $line | awk '{print $1}')
    if [ $(date -d "$backup_date + 30 days" +%s) -lt $(date +%s) ]; then
        backup_file=$(echo $line | awk '{print $4}')
        aws s3 rm ${BACKUP_BUCKET}/${backup_file}
        echo "Deleted old backup: ${backup_file}"
    fi
done
